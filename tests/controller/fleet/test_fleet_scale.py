"""50 `edgebench-agent serve` processes on loopback, one plan over all of
them: every result stored exactly once, none lost, each board pushed the
model's bytes once. Slow (50 agent processes on a small CI host)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from conftest import ROOT, spawn_agent

from controller.cli import main
from controller.db import ResultsDB, runs
from controller.fleet.store import FleetStore

N = 50
TREES = [("orin-nx", "orin-nx"), ("imx8mp", "imx8mp"), ("am62a", "am62a"), ("x86", "generic-linux")]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fifty_agents_one_plan_every_result_stored_once(tmp_path, tiny_onnx_model):
    def start(i: int):
        tree, prof = TREES[i % len(TREES)]
        fix = str(ROOT / "tests" / "fixtures" / tree)
        return spawn_agent(tmp_path / f"s{i:02d}", "--sysfs-root", fix, "--profile", prof, timeout=120)

    with ThreadPoolExecutor(8) as pool:
        agents = list(pool.map(start, range(N)))
    try:
        (tmp_path / "boards.yaml").write_text(
            "boards:\n"
            + "".join(f"  - name: b{i:02d}\n    address: {a.address}\n" for i, a in enumerate(agents))
        )
        shutil.copy(tiny_onnx_model, tmp_path / "cls.onnx")
        (tmp_path / "plan.yaml").write_text(
            "inventory: boards.yaml\njobs:\n"
            "  - name: b\n    models: [cls.onnx]\n    boards: {all: true}\n"
            "    options: {duration: 0.3, warmup: 0, min_iterations: 5, no_telemetry: true}\n"
            "    gates: {min_throughput_ips: 1}\n"
        )
        db_url = f"sqlite:///{tmp_path / 'r.db'}"
        out = str(tmp_path / "o.json")
        rc = main(
            ["fleet", "run", str(tmp_path / "plan.yaml"), "--db", db_url, "--json", out, "--live", "lines"]
        )
        assert rc == 0
        plan_id = json.loads((tmp_path / "o.json").read_text())["plan_id"]
        db = ResultsDB(db_url)
        items = FleetStore(db).items(plan_id)
        with db.engine.connect() as conn:
            stored = [r[0] for r in conn.execute(sa.select(runs.c.run_id))]
            tagged = conn.execute(sa.select(runs.c.board).where(runs.c.plan_id == plan_id)).scalars().all()
        db.close()
        assert len(items) == N and all(i["status"] == "passed" for i in items)
        assert sorted(stored) == sorted(i["run_id"] for i in items)  # once each, none lost
        assert sorted(tagged) == [f"b{i:02d}" for i in range(N)]
        size = tiny_onnx_model.stat().st_size
        assert all(i["bytes_pushed"] == size for i in items)
    finally:
        for a in agents:
            a.stop()
