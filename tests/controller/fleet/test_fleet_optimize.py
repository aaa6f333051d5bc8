"""A plan's optimize job: quantize on the controller, then the four runs on
each board through the fleet's own session (real agents on loopback). The
item's row is the optimized bench with the optimized validate's gates; the
other three runs are stored beside it; a gate the INT8 model misses fails
the item, as `edgebench optimize` exits 3."""

from __future__ import annotations

import json
import shutil

import numpy as np
from conftest import spawn_agent

from controller.cli import main
from controller.db import ResultsDB
from controller.models import onnx_cnn

FAST = "duration: 0.3, warmup: 0, min_iterations: 5, no_telemetry: true"


def test_an_optimize_job_runs_its_four_runs_per_board_and_gates_the_int8_model(env, capsys):
    onnx_cnn.tiny_cnn(env / "cnn.onnx")
    rng = np.random.default_rng(0)
    for name, n in (("cal", 8), ("val", 4)):
        np.savez(env / f"{name}.npz", image=rng.standard_normal((n, 3, 96, 96)).astype(np.float32))
    agents = [spawn_agent(env / f"state{i}") for i in range(2)]
    try:
        inv = ["boards:"] + [f"  - name: b{i}\n    address: {a.address}" for i, a in enumerate(agents)]
        (env / "boards.yaml").write_text("\n".join(inv) + "\n")
        opts = f"calibration: cal.npz, validation: val.npz, out_dir: opt, {FAST}"
        (env / "plan.yaml").write_text(
            "inventory: boards.yaml\njobs:\n"
            "  - name: int8\n    kind: optimize\n    models: [cnn.onnx]\n    boards: {all: true}\n"
            f"    options: {{{opts}, min_cosine: 0.9}}\n    gates: {{min_throughput_ips: 1}}\n"
            "  - name: exact\n    kind: optimize\n    models: [cnn.onnx]\n    boards: {names: [b0]}\n"
            f"    options: {{{opts}, min_cosine: 0.9999999}}\n"
        )
        rc = main(["fleet", "run", "plan.yaml", "--json", "f.json"])
    finally:
        for a in agents:
            a.stop()
    assert rc == 3, capsys.readouterr().err
    plan_id = json.loads((env / "f.json").read_text())["plan_id"]
    assert main(["fleet", "results", plan_id, "--json", "r.json"]) == 0
    items = {(i["job"], i["board"]): i for i in json.loads((env / "r.json").read_text())["jobs"]}
    assert {k: i["status"] for k, i in items.items()} == {
        ("int8", "b0"): "passed",
        ("int8", "b1"): "passed",
        ("exact", "b0"): "gate_failed",
    }
    # the INT8 validate's gate, its threshold as the plan wrote it
    assert (
        "cosine" in items[("exact", "b0")]["reason"]
        and "misses >= 0.9999999" in items[("exact", "b0")]["reason"]
    )
    db = ResultsDB()
    try:
        docs = [db.get(r["run_id"]) for r in db.query(limit=None)]
    finally:
        db.close()
    # three items, four runs each, every one stored once
    assert len(docs) == 12 and len({d["run_id"] for d in docs}) == 12
    by_pipe: dict[str, list] = {}
    for d in docs:
        by_pipe.setdefault(d["labels"]["pipeline"], []).append((d["kind"], d["labels"]["variant"]))
    assert len(by_pipe) == 3
    for kinds in by_pipe.values():
        assert sorted(kinds) == [("bench", "optimized"), ("bench", "original"),
                                 ("validate", "optimized"), ("validate", "original")]  # fmt: skip
    # the item's row: the optimized bench, judged by the plan's gate and the INT8 validate's
    row = items[("int8", "b1")]
    main_doc = next(d for d in docs if d["run_id"] == row["run_id"])
    assert (main_doc["kind"], main_doc["labels"]["variant"]) == ("bench", "optimized")
    names = {g["name"] for g in row["gates"]}
    assert "min_throughput_ips" in names and any("cosine" in n for n in names)
    assert (env / "opt" / "int8" / "b1" / "cnn" / "report.html").is_file()


def test_an_optimize_job_without_its_sets_is_refused_at_its_plan_line(env, capsys):
    onnx_cnn.tiny_cnn(env / "cnn.onnx")
    shutil.copy(env / "cnn.onnx", env / "b.onnx")
    (env / "boards.yaml").write_text("boards:\n  - name: b0\n    address: 127.0.0.1:1\n")
    (env / "plan.yaml").write_text(
        "inventory: boards.yaml\njobs:\n"
        "  - name: int8\n    kind: optimize\n    models: [cnn.onnx]\n    boards: {all: true}\n"
        "    options: {validation: val.npz}\n"
    )
    assert main(["fleet", "run", "plan.yaml"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "an optimize job needs options: {calibration: CAL.npz, validation: VAL.npz}" in line
