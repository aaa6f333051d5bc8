"""`edgebench soak`: the live view, the watch cursor, and the command end to
end against a real agent."""

from __future__ import annotations

import io

from rich.console import Console

from controller.soak.cursor import Cursor
from controller.soak.view import SoakView, clocks_text


def window(i, ips=25.0):
    return {"t_s": 10.0 * i, "dur_s": 10.0, "throughput_ips": ips, "p50_ms": 40.0, "p99_ms": 44.5,
            "temps_c": {"tj": {"max": 60.0 + i, "mean": 59.0}, "cpu": {"max": 55.0, "mean": 54.0}},
            "clocks_hz": {"gpu": {"min": 1_300_500_000, "mean": 1_300_500_000},
                          "cpu0": {"min": 2.2016e9, "mean": 2.2016e9}},
            "power_w": 21.5}  # fmt: skip


def test_plain_view_prints_one_line_per_window_with_hottest_zone_and_clocks():
    out = io.StringIO()  # not a TTY: plain lines
    with SoakView(duration_s=60, window_s=10, out=out) as view:
        view.on_phase("measure")
        view.on_window(window(0))
        view.on_window(window(1, ips=17.25))
    lines = out.getvalue().splitlines()
    assert lines[0] == "phase: measure"
    assert lines[2] == (
        "window    2/6 t=   10.0s     17.25 ips p99 44.50 ms | tj 61.0 °C | clocks cpu0 2202 gpu 1300 MHz"
    )
    assert clocks_text({}) == "clocks n/a"


def test_tty_view_renders_a_live_panel():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    with SoakView(duration_s=60, window_s=10, out=out) as view:
        assert not view.plain
        view.on_sample({"temps_c": {"tj": 71.5}, "clocks_hz": {"gpu": 816_000_000}})
        view.on_window(window(0))
    text = out.getvalue()
    assert "throughput 25.00 ips" in text and "hottest tj 71.5 °C" in text and "gpu 816 MHz" in text
    assert "window 1/6" in text


def recorded_tty_view(windows: list[dict], sample: dict | None = None, width: int = 100) -> list[str]:
    """The rich view drawn on a recording console: the lines a person reads."""
    console = Console(file=io.StringIO(), width=width, record=True)
    with SoakView(duration_s=60, window_s=10, plain=False, console=console) as view:
        view.on_phase("measure")
        if sample:
            view.on_sample(sample)
        for w in windows:
            view.on_window(w)
    return console.export_text().splitlines()


def test_tty_view_keeps_one_line_per_window_above_the_live_panel():
    lines = recorded_tty_view([window(0), window(1, ips=17.25), window(2)])
    history = [ln for ln in lines if ln.startswith("window ")]
    assert history == [
        "window    1/6 t=    0.0s     25.00 ips p99 44.50 ms | tj 60.0 °C | clocks cpu0 2202 gpu 1300 MHz",
        "window    2/6 t=   10.0s     17.25 ips p99 44.50 ms | tj 61.0 °C | clocks cpu0 2202 gpu 1300 MHz",
        "window    3/6 t=   20.0s     25.00 ips p99 44.50 ms | tj 62.0 °C | clocks cpu0 2202 gpu 1300 MHz",
    ]
    panel = lines[len(history) :]
    assert panel[0] == "soak measure: 30/60 s, window 3/6"


def test_tty_progress_bar_has_its_own_line_and_clocks_are_named_once():
    bare = {"t_s": 0.0, "dur_s": 10.0, "throughput_ips": 25.0}  # a board with no sensors
    for width in (40, 100):
        lines = recorded_tty_view([bare], width=width)
        bar = next(ln for ln in lines if "━" in ln)
        assert "throughput" not in bar and bar.rstrip().endswith("17%")
        assert "throughput 25.00 ips" in lines and "clocks n/a" in lines
        assert not any("clocks clocks" in ln for ln in lines)


def test_cursor_remembers_windows_and_never_repeats_a_seq(tmp_path):
    c = Cursor("r1", tmp_path)
    assert c.advance(3, window(0)) and c.advance(4) and c.advance(7, window(1))
    assert not c.advance(7, window(1)) and not c.advance(2)
    again = Cursor("r1", tmp_path)  # another controller process
    assert again.last_seq == 7 and [w["t_s"] for w in again.windows] == [0.0, 10.0]
    again.drop()
    assert Cursor("r1", tmp_path).last_seq == 0


# -- the command, end to end ---------------------------------------------------
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from conftest import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# what `edgebench` runs, so a test can also run it as a separate process (and kill it)
MAIN = "import sys; from controller.cli import main; sys.exit(main(sys.argv[1:]))"


def t_of(line: str) -> float:
    """The window's t_s from a plain view line."""
    return float(re.search(r"t=\s*([0-9.]+)s", line).group(1))


def edgebench(argv) -> int:
    """The CLI in-process."""
    from controller.cli import main

    return main(argv)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'home' / 'results.db'}")
    return tmp_path / "home"


def test_plain_soak_defaults_to_30_minutes_of_10_s_windows(tiny_onnx_model):
    from controller import specs
    from controller.commands import soak

    p = argparse.ArgumentParser(prog="edgebench")
    soak.add_parser(p.add_subparsers(dest="cmd"))
    args = p.parse_args(["soak", str(tiny_onnx_model)])
    assert args.duration == 1800.0 and args.window == 10.0
    spec = specs.build("soak", args, "0" * 64, "tiny.onnx").to_dict()
    assert spec["kind"] == "soak" and spec["duration_s"] == 1800.0 and spec["soak"]["window_s"] == 10.0
    args = p.parse_args(["soak", str(tiny_onnx_model), "--duration", "1h30m", "--window", "250ms"])
    assert (args.duration, args.window) == (5400.0, 0.25)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--window", "0"], "--window must be positive"),
        (["--duration", "5s", "--window", "10s"], "--window (10 s) is longer than --duration (5 s)"),
        (["--target-ips", "-3"], "--target-ips must be positive"),
        (["--attach", "20261123T200000000Z-abcdef"], "give a MODEL or --attach RUN_ID, not both"),
    ],
)
def test_bad_soak_options_are_usage_errors(tiny_onnx_model, capsys, extra, message):
    assert edgebench(["soak", str(tiny_onnx_model), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"edgebench: error: {message}"]


def test_bad_duration_and_missing_model_exit_2(tmp_path, capsys):
    assert edgebench(["soak", "m.onnx", "--duration", "soon"]) == 2
    assert "bad duration 'soon'" in capsys.readouterr().err
    assert edgebench(["soak", str(tmp_path / "nope.onnx")]) == 2
    assert (
        capsys.readouterr().err.strip() == f"edgebench: error: model file not found: {tmp_path / 'nope.onnx'}"
    )
    assert edgebench(["soak"]) == 2
    assert capsys.readouterr().err.strip() == "edgebench: error: soak needs a MODEL (or --attach RUN_ID)"


def test_attach_to_an_unknown_run_is_a_clear_error(agent, capsys):
    rc = edgebench(["soak", "--attach", "20261123T200000000Z-abcdef", "--agent", agent.address])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgebench: error: no run 20261123T200000000Z-abcdef on ") and "\n" not in err


def test_missed_target_exits_3_and_writes_json_and_html(agent, tiny_onnx_model, tmp_path, capsys):
    out_json, out_html = tmp_path / "soak.json", tmp_path / "soak.html"
    rc = edgebench(["soak", str(tiny_onnx_model), "--agent", agent.address, "--duration", "3s",
                    "--window", "1s", "--threads", "1", "--target-ips", "1e9", "--ambient-c", "35",
                    "--enclosure", "IP67 box", "--json", str(out_json), "--html", str(out_html)])  # fmt: skip
    cap = capsys.readouterr()
    assert rc == 3
    assert "gate soak_target failed: sustained" in cap.err and "misses the target of 1e+09 ips" in cap.err
    lines = [line for line in cap.out.splitlines() if line.startswith("window ")]
    assert len(lines) >= 2
    result = json.loads(out_json.read_text())
    soak = result["soak"]
    assert soak["target_met"] is False and soak["enclosure"] == "IP67 box" and soak["ambient_c"] == 35
    assert len(lines) == len(soak["windows"])
    page = out_html.read_text()
    assert "data:image/png;base64," in page and "soak_target" in page


def test_a_reattached_controller_gets_every_window_exactly_once(agent, tiny_onnx_model, tmp_path, home):
    env = {**os.environ, "EDGEBENCH_HOME": str(home), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", MAIN, "soak"]
    first = subprocess.Popen(
        argv + [str(tiny_onnx_model), "--agent", agent.address, "--duration", "8s", "--window", "0.5s",
                "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    run_id, seen1 = None, []
    for line in first.stdout:
        if line.startswith("soak ") and run_id is None:
            run_id = line.split()[1]
        if line.startswith("window "):
            seen1.append(t_of(line))
            if len(seen1) == 3:
                break
    first.send_signal(signal.SIGKILL)  # the controller dies; the soak goes on
    first.wait(timeout=30)
    assert run_id and len(seen1) == 3
    journal = agent.state_dir / "runs" / run_id / "journal.jsonl"
    # the agent journals windows nobody is watching: two more than the first controller saw
    assert wait_until(lambda: journal.read_text().count('"kind":"window"') >= 5, timeout=30)
    attach = ["--attach", run_id, "--agent", agent.address, "--json", str(tmp_path / "r.json")]
    second = subprocess.run(argv + attach, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert second.returncode == 0, second.stderr
    out2 = second.stdout.splitlines()
    assert "resuming after window 3" in "\n".join(out2)
    seen2 = [t_of(line) for line in out2 if line.startswith("window ")]
    result = json.loads((tmp_path / "r.json").read_text())
    # each window shown once across the two controllers, none missing, in order
    assert seen1 + seen2 == [round(w["t_s"], 1) for w in result["soak"]["windows"]]
    assert len(seen2) >= 3
    assert not (home / "watch" / f"{run_id}.json").exists()  # the finished run's cursor is gone


def test_a_finished_soak_is_in_the_results_db_and_reports_from_it(agent, tiny_onnx_model, tmp_path, capsys):
    from controller.db import ResultsDB

    rc = edgebench(["soak", str(tiny_onnx_model), "--agent", agent.address, "--duration", "3s",
                    "--window", "1s", "--warmup", "0", "--threads", "1",
                    "--json", str(tmp_path / "r.json")])  # fmt: skip
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    run_id = cap.out.splitlines()[0].split()[1]
    db = ResultsDB()  # $EDGEBENCH_DB
    try:
        stored = db.get(run_id)
        rows = db.query(kind="soak")
    finally:
        db.close()
    assert stored is not None and stored["kind"] == "soak" and stored["status"] == "completed"
    assert stored == json.loads((tmp_path / "r.json").read_text())
    assert len(stored["soak"]["windows"]) >= 2 and stored["soak"]["verdict"]
    assert [r["run_id"] for r in rows] == [run_id] and rows[0]["agent"] == agent.address

    html = tmp_path / "from-db.html"
    assert edgebench(["report", run_id, "--html", str(html)]) == 0
    page = html.read_text()
    assert run_id in page and stored["soak"]["summary"] in page


def test_attach_to_a_bench_run_is_refused_in_one_line(agent, push, tiny_onnx_model, capsys):
    from agent.rpc.edgebench.v1 import agent_pb2 as pb

    sha = push(agent.stub, tiny_onnx_model)
    spec = {"kind": "bench", "model_sha256": sha, "duration_s": 0.2, "warmup_s": 0, "min_iterations": 1}
    run_id = agent.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id
    assert edgebench(["soak", "--attach", run_id, "--agent", agent.address]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"edgebench: error: run {run_id} is a bench run, not a soak"


def test_ctrl_c_leaves_a_remote_soak_running_and_says_how_to_get_it(agent, tiny_onnx_model, home):
    env = {**os.environ, "EDGEBENCH_HOME": str(home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN, "soak", str(tiny_onnx_model), "--agent", agent.address,
         "--duration", "20s", "--window", "0.5s", "--warmup", "0", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    run_id = proc.stdout.readline().split()[1]
    for line in proc.stdout:
        if line.startswith("window "):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert (
        f"run {run_id} continues; collect it: edgebench fetch {run_id} --agent {agent.address} "
        f"(or watch it again: edgebench soak --attach {run_id} --agent {agent.address})"
    ) in err.splitlines()
    from agent.rpc.edgebench.v1 import agent_pb2 as pb

    assert agent.stub.GetRun(pb.GetRunRequest(run_id=run_id)).status == "running"
    agent.stub.CancelRun(pb.CancelRunRequest(run_id=run_id))
