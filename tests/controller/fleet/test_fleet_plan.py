"""Fleet inputs without agents: a bad inventory or plan is refused with exit 2
naming its line and nothing stored; a plan's options become the same RunSpec
the CLI builds from the same flags; the plan's gates judge a result; the
JUnit and Markdown renderings agree with the items."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from controller.cli import main
from controller.fleet import gates, inventory, options, report
from controller.fleet import plan as fleet_plan
from controller.runopts import add_run_options
from controller.specs import from_options as spec_from_args

GOOD_INV = "boards:\n  - name: orin-1\n    address: 127.0.0.1:50551\n    labels: {site: lab-2}\n"


def _plan(tmp_path: Path, jobs: str, inv: str = GOOD_INV) -> Path:
    (tmp_path / "boards.yaml").write_text(inv)
    (tmp_path / "cls.onnx").write_bytes(b"\x08\x08")
    p = tmp_path / "plan.yaml"
    p.write_text("inventory: boards.yaml\njobs:\n" + jobs)
    return p


JOB = "  - name: j\n    models: [cls.onnx]\n    boards: {all: true}\n"


@pytest.mark.parametrize(
    "inv, line, words",
    [
        ("boards:\n  - name: a\n    adress: 1.2.3.4:5\n", 3, "unknown board key 'adress'"),
        ("boards:\n  - name: a\n    address: nowhere\n", 3, "HOST:PORT"),
        (
            "boards:\n  - name: a\n    address: h:1\n  - name: a\n    address: h:2\n",
            4,
            "already defined on line 2",
        ),
        ("boards:\n  - name: a\n    address: h:1\n    labels: [x]\n", 4, "labels must be a mapping"),
        ("boards:\n  - name: a\n    address: h:1\n   bad: [\n", 4, "not valid YAML"),
        ("boards: []\n", 1, "no boards"),
    ],
)
def test_bad_inventory_is_refused_naming_the_line(tmp_path, capsys, monkeypatch, inv, line, words):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    (tmp_path / "boards.yaml").write_text(inv)
    assert main(["fleet", "status", "--inventory", str(tmp_path / "boards.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"boards.yaml:{line}:" in err and words in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "jobs, line, words",
    [
        (JOB + "    kind: benchh\n", 6, "kind must be one of"),
        (JOB + "    options: {duration: 2s, frobnicate: 1}\n", 6, "unknown option 'frobnicate'"),
        (JOB + "    options:\n      duration: soon\n", 7, "bad duration"),
        (JOB + "    options:\n      runtime: tensorflow\n", 7, "invalid choice"),
        (JOB + "    gates: {min_fps: 3}\n", 6, "unknown gate 'min_fps'"),
        (JOB + "    gates: {min_throughput_ips: lots}\n", 6, "needs a number"),
        ("  - name: j\n    models: [missing.onnx]\n    boards: {all: true}\n", 4, "model file not found"),
        (
            "  - name: j\n    models: [cls.onnx]\n    boards: {names: [orin-9]}\n",
            5,
            "no board named 'orin-9'",
        ),
        ("  - name: j\n    models: [cls.onnx]\n", 3, "needs boards"),
        (JOB + JOB, 6, "defined twice"),
        (
            "  - name: j\n    kind: validate\n    models: [cls.onnx]\n    boards: {all: true}\n",
            3,
            "reference",
        ),
    ],
)
def test_bad_plan_is_refused_naming_the_line_and_nothing_stored(tmp_path, capsys, jobs, line, words):
    plan = _plan(tmp_path, jobs)
    db = tmp_path / "r.db"
    assert main(["fleet", "run", str(plan), "--db", f"sqlite:///{db}", "--live", "lines"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"plan.yaml:{line}:" in err and words in err, err
    if db.exists():  # the DB may be created, but no plan is in it
        import sqlite3

        assert sqlite3.connect(db).execute("select count(*) from fleet_plans").fetchone()[0] == 0


def test_plan_options_build_the_spec_the_cli_builds(tmp_path):
    plan = _plan(
        tmp_path,
        JOB + "    options:\n"
        "      duration: 2s\n      warmup: 0.5\n      input_shape: {x: 1x3x48x192}\n"
        "      provider: [openvino, cpu]\n      provider_opt: {openvino: {device_type: CPU}}\n"
        "      label: {variant: int8}\n      fail_on_fallback: true\n      threads: 2\n",
    )
    job = fleet_plan.load(plan).jobs[0]
    args = options.parse("bench", job.options, job.models[0], tmp_path)
    from_plan = spec_from_args(args, "bench", "ab" * 32, "cls.onnx").to_dict()
    cli = argparse.ArgumentParser()
    add_run_options(cli)
    flags = ["--duration", "2s", "--warmup", "0.5", "--input-shape", "x=1x3x48x192", "--provider", "openvino"]
    flags += ["--provider", "cpu", "--provider-opt", "openvino:device_type=CPU", "--label", "variant=int8"]
    flags += ["--fail-on-fallback", "--threads", "2"]
    from_cli = spec_from_args(cli.parse_args(flags), "bench", "ab" * 32, "cls.onnx").to_dict()
    assert from_plan == from_cli
    assert from_plan["duration_s"] == 2.0 and from_plan["input_shapes"] == {"x": [1, 3, 48, 192]}


def test_selectors_narrow_by_names_labels_and_profiles():
    b = inventory.Board("orin-1", "h:1", labels={"site": "lab-2", "enclosure": "ip67"}, profile="orin-nx")
    S = fleet_plan.Selector
    assert S(all=True).matches(b, None)
    assert S(labels={"site": "lab-2"}).matches(b, None) and not S(labels={"site": "lab-1"}).matches(b, None)
    assert S(profiles=["orin-nx"]).matches(b, None) and not S(profiles=["imx8mp"]).matches(b, None)
    other = inventory.Board("x", "h:2")
    assert S(profiles=["imx8mp"]).matches(other, "imx8mp")  # no expected profile: the reported one
    assert not S(names=["x"], labels={"site": "lab-2"}).matches(other, None)  # keys narrow together


def test_gates_judge_the_figures_and_keep_the_runs_own():
    result = {
        "throughput_ips": 120.0,
        "latency_ms": {"p99": 9.0},
        "soak": {"sustained_ratio": 0.7},
        "gates": [{"name": "fallback", "passed": False, "message": "2 ops on CPU"}],
    }
    g = {
        x["name"]: x
        for x in gates.evaluate(
            result,
            {"min_throughput_ips": 100, "max_p99_ms": 8, "min_sustained_ratio": 0.8, "max_miss_rate": 0.1},
        )
    }
    assert g["min_throughput_ips"]["passed"] and g["min_throughput_ips"]["value"] == 120.0
    assert not g["max_p99_ms"]["passed"] and "9 ms misses <= 8 ms" in g["max_p99_ms"]["message"]
    assert not g["min_sustained_ratio"]["passed"]
    assert g["max_miss_rate"]["skipped"] and g["max_miss_rate"]["passed"]  # no load pattern ran
    assert not g["fallback"]["passed"] and g["fallback"]["source"] == "run"
    # a figure the result lacks fails its gate
    assert not gates.evaluate({}, {"min_throughput_ips": 1})[0]["passed"]


def test_junit_has_a_case_per_job_board_gate_and_counts_agree():
    def item(board, status, gate=None, ips=None, reason=None):
        gates = (
            []
            if gate is None
            else [{"name": "min_throughput_ips", "passed": gate, "message": reason or "ok"}]
        )
        res = None if ips is None else {"throughput_ips": ips}
        run_id = None if res is None else f"r-{board}"
        return {"job": "j", "board": board, "model": "m.onnx", "status": status, "run_id": run_id,
                "reason": reason, "gates": gates, "result": res}  # fmt: skip

    items = [
        item("a", "passed", True, 5.0),
        item("b", "gate_failed", False, 1.0, "slow"),
        item("c", "skipped", reason="cannot run here: sm_87"),
        item("d", "dropped", reason="board dropped"),
    ]
    root = ET.fromstring(report.junit("P", items))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"a.min_throughput_ips", "b.min_throughput_ips", "c.run", "d.run"}
    assert cases["b.min_throughput_ips"].find("failure").get("message") == "slow"
    assert cases["c.run"].find("skipped") is not None and cases["d.run"].find("failure") is not None
    assert root.get("tests") == "4" and root.get("failures") == "2"
    md = report.markdown("P", items)
    assert "| j/m.onnx | PASS 5.0 inf/s | FAIL 1.0 inf/s [min_throughput_ips] | SKIP" in md
    assert "4 item(s): 1 dropped, 1 gate_failed, 1 passed, 1 skipped" in md


def test_live_view_is_a_table_on_a_tty_and_lines_off_it():
    import io

    from controller.fleet.live import Live

    state = {"board": "orin-1", "job": "cls", "model": "m.onnx", "phase": "measure", "progress": 0.5,
             "figure": "120.0 inf/s", "done": 0, "total": 2, "history": []}  # fmt: skip
    tty = io.StringIO()
    with Live(["orin-1", "imx-1"], stream=tty, tty=True) as live:
        live.event("orin-1", state)
    table = tty.getvalue()
    assert "orin-1" in table and "imx-1" in table and "120.0 inf/s" in table and "50%" in table
    plain = io.StringIO()
    with Live(["orin-1"], stream=plain, tty=False) as live:
        live.event("orin-1", state)
        live.event("orin-1", state)  # the same state again: no second line
        live.event("orin-1", {**state, "phase": "passed", "done": 1, "history": ["cls m.onnx: passed"]})
    assert plain.getvalue().splitlines() == [
        "orin-1: cls m.onnx measure",
        "orin-1: cls m.onnx: passed  120.0 inf/s",
    ]
