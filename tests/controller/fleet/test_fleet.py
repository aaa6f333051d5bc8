"""Fleet end to end: a plan over a dozen real `edgebench-agent serve`
processes on loopback with mixed profiles (fixture sysfs trees). Boards run
concurrently; one agent is killed mid-plan and the others finish; after it
comes back `fleet resume` finishes exactly the unfinished items, each stored
once; the portability guard skips boards that cannot run an artifact; the
HTML, Markdown and JUnit reports agree with the stored items."""

from __future__ import annotations

import json
import shutil
import threading
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import ROOT, spawn_agent, wait_until

from controller.cli import main
from controller.db import ResultsDB, runs
from controller.fleet.store import FleetStore

FIX = ROOT / "tests" / "fixtures"
# (fixture tree, profile): every board family, some twice
BOARDS = [
    ("agx-orin", "agx-orin"),
    ("agx-orin-r36", "agx-orin"),
    ("orin-nx", "orin-nx"),
    ("orin-nano", "orin-nano"),
    ("xavier-nx", "xavier-nx"),
    ("jetson-nano", "jetson-nano"),
    ("imx8mp", "imx8mp"),
    ("am62a", "am62a"),
    ("x86", "generic-linux"),
    ("orin-nx", "orin-nx"),
    ("imx8mp", "imx8mp"),
    ("am62a", "am62a"),
]
SM87 = {"agx-orin", "orin-nx", "orin-nano"}  # the Orin GPUs: what the sidecar below requires
FAST = "warmup: 0, min_iterations: 5, no_telemetry: true"


@pytest.fixture(scope="module")
def shelf(tmp_path_factory):
    d = tmp_path_factory.mktemp("shelf")

    def one(i: int):
        tree, prof = BOARDS[i]
        return spawn_agent(d / f"state{i:02d}", "--sysfs-root", str(FIX / tree), "--profile", prof)

    with ThreadPoolExecutor(6) as pool:
        agents = list(pool.map(one, range(len(BOARDS))))
    yield d, agents
    for a in agents:
        if a.proc.poll() is None:
            a.stop()


def _write_plan(d: Path, agents, model: Path) -> Path:
    lines = ["boards:"]
    for i, a in enumerate(agents):
        site = "lab-2" if i % 2 else "lab-1"
        lines += [f"  - name: b{i:02d}", f"    address: {a.address}", f"    labels: {{site: {site}}}"]
    (d / "boards.yaml").write_text("\n".join(lines) + "\n")
    shutil.copy(model, d / "cls.onnx")
    shutil.copy(model, d / "eng.onnx")
    (d / "eng.onnx.json").write_text(json.dumps({"requires": {"sm": 87}}))
    plan = d / "plan.yaml"
    plan.write_text(
        f"""inventory: boards.yaml
jobs:
  - name: long
    kind: bench
    models: [cls.onnx]
    boards: {{names: [b00]}}
    options: {{duration: 6s, {FAST}}}
  - name: cls-bench
    kind: bench
    models: [cls.onnx]
    boards: {{all: true}}
    options: {{duration: 1s, input_shape: {{x: 1x64}}, {FAST}}}
    gates: {{min_throughput_ips: 1, max_p99_ms: 1000}}
  - name: strict
    models: [cls.onnx]
    boards: {{profiles: [imx8mp]}}
    options: {{duration: 0.3, {FAST}}}
    gates: {{min_throughput_ips: 1000000000000}}
  - name: trt
    models: [eng.onnx]
    boards: {{labels: {{site: lab-1}}}}
    options: {{duration: 0.3, {FAST}}}
"""
    )
    return plan


def _overlap(spans: list[tuple[float, float]]) -> int:
    """Most runs in flight at one instant."""
    ev = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    cur = best = 0
    for _, k in ev:
        cur += k
        best = max(best, cur)
    return best


def test_plan_over_a_dozen_agents_survives_a_drop_and_resumes_each_item_once(
    shelf, tiny_onnx_model, tmp_path
):
    d, agents = shelf
    plan = _write_plan(tmp_path, agents, tiny_onnx_model)
    db_url = f"sqlite:///{tmp_path / 'r.db'}"
    out = {}

    def run():
        out["rc"] = main(
            ["fleet", "run", str(plan), "--db", db_url, "--json", str(tmp_path / "run.json"),
             "--drop-after", "3", "--live", "lines"]
        )  # fmt: skip

    t = threading.Thread(target=run)
    t.start()
    # kill b00's agent once its long run is measuring
    db = ResultsDB(db_url)
    store = FleetStore(db)
    victim = agents[0]

    def long_run_measuring() -> bool:
        try:
            plans = db.engine.connect().execute(sa.text("select plan_id from fleet_plans")).all()
        except sa.exc.OperationalError:
            return False
        if not plans:
            return False
        rid = {(r["job"], r["board"]): r for r in store.items(plans[0][0])}[("long", "b00")]["run_id"]
        journal = victim.state_dir / "runs" / str(rid) / "journal.jsonl"
        if not rid or not journal.exists():
            return False
        events = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
        return any(e["kind"] == "phase" and e["payload"].get("phase") == "measure" for e in events)

    assert wait_until(long_run_measuring, timeout=90, step=0.1), "the long run never started measuring"
    victim.kill()
    t.join(150)
    assert not t.is_alive()
    assert out["rc"] == 1  # a board dropped: the plan is unfinished

    doc = json.loads((tmp_path / "run.json").read_text())
    plan_id = doc["plan_id"]
    items = {(i["job"], i["board"]): i for i in store.items(plan_id)}
    assert {(j["job"], j["board"]): j["status"] for j in doc["jobs"]} == {
        k: v["status"] for k, v in items.items()
    }
    assert items[("long", "b00")]["status"] == "dropped"
    assert "dropped" in items[("long", "b00")]["reason"]
    assert items[("cls-bench", "b00")]["status"] == "dropped"  # not tried on a board known gone
    others = [i for k, i in items.items() if k[1] != "b00"]
    assert all(i["status"] in ("passed", "gate_failed", "skipped") for i in others), others
    # the portability guard: lab-1 boards (even index) that are not Orin are skipped with the reason
    for i in range(2, len(BOARDS), 2):
        it = items[("trt", f"b{i:02d}")]
        if BOARDS[i][1] in SM87:
            assert it["status"] == "passed", it
        else:
            assert it["status"] == "skipped" and "sm" in it["reason"] and it["run_id"] is None, it
    assert items[("strict", "b06")]["status"] == "gate_failed"
    assert items[("strict", "b10")]["status"] == "gate_failed"
    assert not any(k[0] == "strict" and k[1] not in ("b06", "b10") for k in items)

    # concurrency: the boards' 1-second benches were in flight together
    docs = {i["run_id"]: db.get(i["run_id"]) for i in others if i["run_id"]}
    spans = [(r["started_unix"], r["ended_unix"]) for r in docs.values() if r["spec"]["duration_s"] == 1.0]
    assert len(spans) == 11
    assert _overlap(spans) >= 3, spans

    # the agent comes back on its address; resume finishes exactly b00's items
    restarted = spawn_agent(
        victim.state_dir, "--listen", victim.address, "--sysfs-root", str(FIX / BOARDS[0][0]),
        "--profile", BOARDS[0][1],
    )  # fmt: skip
    try:
        before = {k: (i["run_id"], i["attempts"]) for k, i in items.items() if k[1] != "b00"}
        rc = main(["fleet", "resume", plan_id, "--db", db_url, "--drop-after", "3", "--live", "lines"])
        assert rc == 3  # everything finished; the strict gate failed
        after = {(i["job"], i["board"]): i for i in store.items(plan_id)}
        assert {k: (i["run_id"], i["attempts"]) for k, i in after.items() if k[1] != "b00"} == before
        assert after[("long", "b00")]["status"] == "passed" and after[("long", "b00")]["attempts"] == 2
        assert after[("cls-bench", "b00")]["status"] == "passed"
        # a second resume has nothing to do and starts nothing
        assert main(["fleet", "resume", plan_id, "--db", db_url, "--live", "lines"]) == 3
        again = {(i["job"], i["board"]): (i["run_id"], i["attempts"]) for i in store.items(plan_id)}
        assert again == {k: (i["run_id"], i["attempts"]) for k, i in after.items()}
    finally:
        restarted.stop()

    # every result stored exactly once: one runs row per item that ran, nothing else
    with db.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.select(runs.c.run_id))]
    ran = [i["run_id"] for i in after.values() if i["run_id"]]
    assert sorted(stored) == sorted(ran)
    assert len(ran) == sum(1 for i in after.values() if i["status"] != "skipped")
    # push once: per board, the model's bytes crossed the wire once in all (eng.onnx is the same bytes)
    size = tiny_onnx_model.stat().st_size
    per_board: dict[str, int] = {}
    for (_, board), i in after.items():
        per_board[board] = per_board.get(board, 0) + int(i["bytes_pushed"] or 0)
    assert per_board == {f"b{i:02d}": size for i in range(len(BOARDS))}

    # reports: the JUnit cases are the stored gates, one per (job, board, gate)
    html, md, junit = tmp_path / "f.html", tmp_path / "f.md", tmp_path / "f.xml"
    rc = main(
        [
            "fleet",
            "report",
            plan_id,
            "--db",
            db_url,
            "--html",
            str(html),
            "--md",
            str(md),
            "--junit",
            str(junit),
        ]
    )
    assert rc == 0
    suites = ET.parse(junit).getroot()
    cases = {(s.get("name").split(".")[-1], c.get("name")): c for s in suites for c in s}
    want = {}
    for (job, board), i in after.items():
        for g in i["gates"] or [{"name": "run", "passed": True}]:
            want[(job, f"{board}.{g['name']}")] = g["passed"]
    assert {k: c.find("failure") is None for k, c in cases.items()} == want
    assert int(suites.get("failures")) == sum(1 for v in want.values() if not v) == 2
    page = html.read_text()
    assert all(f"b{i:02d}" in page for i in range(len(BOARDS))) and "<img" in page
    assert "| cls-bench/cls.onnx |" in md.read_text()
    db.close()
