"""Fleet controller cost: one plan of 1-second benches over 1, 10 and 50
`edgebench-agent serve` processes on loopback (fixture sysfs trees, a mix of
profiles).

Figures (bench/results/fleet.json), per agent count N:
- wall_s: the controller's wall time for the plan (`fleet run`, in-process:
  probe, push, run, watch, store). Sub-linear growth: wall_s(N) / wall_s(1)
  well below N (boards run concurrently; on this 2-core host the agents'
  worker processes, not the controller, set the pace at 50).
- controller_cpu_s and controller_cpu_per_agent_ms: this process's CPU time
  (user+sys) over the plan; the agents are other processes.
- bytes_pushed_per_board: every board's pushed bytes, summed over its items
  (two jobs of the same model); equal to the model's size once
  (push_once_ok).
- stored_once: one stored result per item, none lost.

Run: .venv/bin/python bench/bench_fleet.py [--counts 1,10,50]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import sqlalchemy as sa  # noqa: E402
from conftest import spawn_agent  # noqa: E402

from controller.cli import main as cli  # noqa: E402
from controller.db import ResultsDB, runs  # noqa: E402
from controller.fleet.store import FleetStore  # noqa: E402

TREES = [("orin-nx", "orin-nx"), ("imx8mp", "imx8mp"), ("am62a", "am62a"), ("x86", "generic-linux"),
         ("agx-orin", "agx-orin"), ("xavier-nx", "xavier-nx")]  # fmt: skip


def model(d: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        initializer=[w],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, d / "cls.onnx")
    return d / "cls.onnx"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one(n: int, d: Path) -> dict:
    d.mkdir()
    m = model(d)

    def start(i: int):
        tree, prof = TREES[i % len(TREES)]
        fix = str(ROOT / "tests/fixtures" / tree)
        return spawn_agent(d / f"s{i:02d}", "--sysfs-root", fix, "--profile", prof, timeout=120)

    with ThreadPoolExecutor(8) as pool:
        agents = list(pool.map(start, range(n)))
    try:
        (d / "boards.yaml").write_text(
            "boards:\n"
            + "".join(f"  - name: b{i:02d}\n    address: {a.address}\n" for i, a in enumerate(agents))
        )
        (d / "plan.yaml").write_text(
            "inventory: boards.yaml\njobs:\n"
            "  - name: bench-1s\n    models: [cls.onnx]\n    boards: {all: true}\n"
            "    options: {duration: 1, warmup: 0, min_iterations: 5, no_telemetry: true}\n"
            "    gates: {min_throughput_ips: 1}\n"
            "  - name: again\n    models: [cls.onnx]\n    boards: {all: true}\n"
            "    options: {duration: 1, warmup: 0, min_iterations: 5, no_telemetry: true}\n"
        )
        db_url = f"sqlite:///{d / 'r.db'}"
        c0, t0 = cpu_s(), time.perf_counter()
        rc = cli(["fleet", "run", str(d / "plan.yaml"), "--db", db_url, "--json", str(d / "out.json"),
                  "--live", "lines", "--drop-after", "60"])  # fmt: skip
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
        plan_id = json.loads((d / "out.json").read_text())["plan_id"]
        db = ResultsDB(db_url)
        items = FleetStore(db).items(plan_id)
        with db.engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar()
        db.close()
        per_board: dict[str, int] = {}
        for i in items:
            per_board[i["board"]] = per_board.get(i["board"], 0) + int(i["bytes_pushed"] or 0)
        size = m.stat().st_size
        return {
            "agents": n,
            "items": len(items),
            "exit_code": rc,
            "passed": sum(1 for i in items if i["status"] == "passed"),
            "wall_s": round(wall, 2),
            "controller_cpu_s": round(cpu, 2),
            "controller_cpu_per_agent_ms": round(cpu / n * 1000, 1),
            "model_bytes": size,
            "bytes_pushed_per_board": sorted(set(per_board.values())),
            "push_once_ok": all(v == size for v in per_board.values()) and len(per_board) == n,
            "stored_once": stored == len(items) == len({i["run_id"] for i in items if i["run_id"]}),
        }
    finally:
        for a in agents:
            a.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1,10,50")
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    res = {"machine": {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]}, "runs": []}
    os.environ.setdefault("EDGEBENCH_HOME", tempfile.mkdtemp())
    with tempfile.TemporaryDirectory() as t:
        for n in counts:
            r = one(n, Path(t) / f"n{n}")
            res["runs"].append(r)
            print(json.dumps(r), file=sys.stderr)
    base = res["runs"][0]["wall_s"] if counts[0] == 1 else None
    if base:
        for r in res["runs"]:
            r["wall_vs_1_agent"] = round(r["wall_s"] / base, 2)
        res["sublinear"] = all(r["wall_vs_1_agent"] < r["agents"] for r in res["runs"] if r["agents"] > 1)
    print(json.dumps(res, indent=1))
    if counts == [1, 10, 50]:
        (ROOT / "bench" / "results" / "fleet.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
