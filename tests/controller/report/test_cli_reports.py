"""Compare and progress rendering: ops that moved to CPU between two results,
and the TTY progress bar path fed with real-shaped WatchRun events."""

from __future__ import annotations

import io
import json

from controller.cli import main
from controller.progress import Progress
from controller.report.compare import compare
from controller.report.compare_text import render


def _doc(run_id: str, ips: float, devices: dict[str, str]) -> dict:
    nodes = [{"name": n, "op_type": "Conv", "device": d} for n, d in devices.items()]
    fb = [n for n in nodes if n["device"] == "CPU"]
    return {
        "run_id": run_id,
        "kind": "bench",
        "status": "completed",
        "throughput_ips": ips,
        "latency_ms": {"p50": 1000 / ips, "p99": 2000 / ips, "mean": 1000 / ips, "p90": 1500 / ips},
        "placement": {"nodes": nodes, "fallback_nodes": fb, "fallback": bool(fb)},
    }


def test_compare_names_ops_that_moved_to_cpu(tmp_path, capsys):
    a = _doc("A", 10.0, {"conv1": "VSINPU", "conv2": "VSINPU"})
    b = _doc("B", 0.5, {"conv1": "VSINPU", "conv2": "CPU"})
    c = compare(a, b)
    assert c["moved"] == [{"name": "conv2", "from": "VSINPU", "to": "CPU"}]
    assert c["new_fallback"] == ["conv2"] and c["throughput_ips"]["pct"] == -95.0
    assert c["placement_changes"] == ["fallback"] and c["added_nodes"] == c["removed_nodes"] == []
    text = render(c)
    assert "conv2: VSINPU -> CPU" in text and "-95.0%" in text
    assert "fallback             no        yes  changed" in text and "placement unchanged" not in text
    # a node renamed by a new SDK: one only in A, one only in B
    b2 = _doc("B", 10.0, {"conv1": "VSINPU", "conv2_fused": "VSINPU"})
    c2 = compare(a, b2)
    assert [n["name"] for n in c2["removed_nodes"]] == ["conv2"]
    assert [n["name"] for n in c2["added_nodes"]] == ["conv2_fused"] and c2["moved"] == []
    assert "nodes only in A: conv2 (Conv, VSINPU)" in render(c2)
    assert "placement unchanged" in render(compare(a, a))
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    out = tmp_path / "c.json"
    assert (
        main(["compare", str(pa), str(pb), "--json", str(out), "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 0
    )
    assert json.loads(out.read_text())["moved"][0]["name"] == "conv2"
    assert main(["compare", str(pa), "no-such-run", "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    assert capsys.readouterr().err.strip().endswith("no such run or file: no-such-run")


def test_progress_bar_on_a_tty_and_plain_lines_otherwise():
    events = [
        {"kind": "phase", "payload": {"phase": "measure"}},
        {
            "kind": "progress",
            "payload": {"elapsed_s": 1.0, "target_s": 4.0, "iterations": 100, "throughput_ips": 100.0},
        },
        {
            "kind": "progress",
            "payload": {"elapsed_s": 4.0, "target_s": 4.0, "iterations": 400, "throughput_ips": 100.0},
        },
    ]
    tty = io.StringIO()
    with Progress(4.0, stream=tty, tty=True) as p:
        for ev in events:
            p.event(ev)
        task = p._bar.tasks[0]
        assert task.completed == 4.0 and task.fields["ips"] == "100.0 inf/s" and task.description == "measure"
    plain = io.StringIO()
    with Progress(4.0, stream=plain, tty=False) as p:
        for ev in events:
            p.event(ev)
    lines = plain.getvalue().splitlines()
    assert lines[0] == "phase measure" and "100.0 inf/s" in lines[1] and "400 it" in lines[2]


def test_junit_puts_properties_first_and_leaves_out_absent_values():
    import xml.etree.ElementTree as ET

    from controller.report import junit

    failed = {
        "run_id": "r1",
        "kind": "bench",
        "status": "failed",
        "error": "worker died",
        "model": {"name": "m"},
    }
    suite = ET.fromstring(junit.render(failed))
    assert [c.tag for c in suite][0] == "properties"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props == {"run_id": "r1", "status": "failed"}  # no throughput_ips="None"
    assert suite.get("failures") == "1" and suite.find("testcase/failure").get("message") == "worker died"


def test_the_collect_hint_carries_the_auth_options_the_call_used():
    from controller.session import Session

    class Client:
        addr = "board:50551"

    flags = "--token-file tok --tls-ca ca.pem"
    assert (
        Session(Client(), auth_flags=flags).agent_flags()
        == "--agent board:50551 --token-file tok --tls-ca ca.pem"
    )
    assert Session(Client()).agent_flags() == "--agent board:50551"
