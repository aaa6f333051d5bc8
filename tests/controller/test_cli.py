"""End to end through the real CLI (controller.cli.main in-process) against a real
`edgebench-agent serve` subprocess on loopback: ONNX and .tflite benches, the DB,
reports, and every bad input of issue 2 with its one-line error and exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import spawn_agent, stored_rows

from controller.cli import main
from controller.db import ResultsDB

FAST = ["--warmup", "0", "--duration", "0.3", "--min-iterations", "5", "--no-telemetry", "--quiet"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("agent")
    ap = spawn_agent(d / "state")
    yield ap
    ap.stop()


def _one_error(capsys) -> str:
    """The one error line; nothing else on stderr may look like a failure (a
    traceback, a second message) besides the 'run X on ADDR' announcement."""
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("edgebench: error: ")]
    assert len(lines) == 1, err
    others = [line for line in err if line not in lines and not line.startswith("run ")]
    assert others == [], err
    return lines[0]


def test_bench_onnx_on_served_agent_stores_result_and_writes_json(served, env, tiny_onnx_model, capsys):
    out = env / "r.json"
    rc = main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST, "--json", str(out)])
    assert rc == 0, capsys.readouterr()
    doc = json.loads(out.read_text())
    assert doc["status"] == "completed" and doc["iterations"] >= 5 and doc["throughput_ips"] > 0
    text = capsys.readouterr().out
    assert "latency ms" in text and "p99" in text and "throughput" in text
    rows = stored_rows()
    assert [r["run_id"] for r in rows] == [doc["run_id"]]
    assert rows[0]["agent"] == served.address and rows[0]["p99_ms"] == doc["latency_ms"]["p99"]
    # runs / report / markdown / junit from the DB
    assert main(["runs"]) == 0 and doc["run_id"] in capsys.readouterr().out
    md, ju = env / "r.md", env / "r.xml"
    assert main(["report", doc["run_id"], "--md", str(md), "--junit", str(ju)]) == 0
    assert "| p50 |" in md.read_text() and 'failures="0"' in ju.read_text()


def test_bench_tflite_on_served_agent(served, env, tmp_path, capsys):
    from controller.models.tflite_builder import float_cnn

    model = float_cnn(tmp_path / "cnn.tflite", size=16)
    out = env / "t.json"
    assert main(["bench", "--agent", served.address, str(model), *FAST, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["model"]["format"] == "tflite" and doc["iterations"] >= 5
    assert stored_rows()[0]["model_name"] == "cnn.tflite"


def test_fail_on_fallback_exits_3_with_red_summary_naming_ops(served, env, tmp_path, capsys, monkeypatch):
    from controller.models.tflite_builder import add_cumsum_add
    from controller.report import placement

    monkeypatch.setattr(placement, "use_color", lambda stream=None: True)
    model = add_cumsum_add(tmp_path / "acs.tflite")
    rc = main(["bench", "--agent", served.address, str(model), *FAST, "--fail-on-fallback"])
    out = capsys.readouterr().out
    assert rc == 3
    assert "\x1b[31m" in out and "CUMSUM" in out and "FAIL" in out
    ju = env / "g.xml"
    main(["report", stored_rows()[0]["run_id"], "--junit", str(ju)])
    assert "<failure" in ju.read_text() and "CUMSUM" in ju.read_text()


def _bad(served, model, *extra):
    return main(["bench", "--agent", served.address, str(model), *FAST, *extra])


def test_not_a_model_file_is_bad_input(served, env, tmp_path, capsys):
    f = tmp_path / "notes.onnx"
    f.write_text("hello, not a model\n")
    assert _bad(served, f) == 2
    assert "not a model file: notes.onnx is neither ONNX nor TFLite" in _one_error(capsys)
    assert stored_rows() == []


def test_truncated_onnx_is_bad_input(served, env, tmp_path, tiny_onnx_model, capsys):
    f = tmp_path / "trunc.onnx"
    f.write_bytes(tiny_onnx_model.read_bytes()[:200])
    assert _bad(served, f) == 2
    _one_error(capsys)
    assert stored_rows() == []


def test_missing_model_file(served, env, capsys):
    assert _bad(served, "nope.onnx") == 2
    assert "model file not found" in _one_error(capsys)


def test_unknown_provider_names_available(served, env, tiny_onnx_model, capsys):
    assert _bad(served, tiny_onnx_model, "--provider", "BogusExecutionProvider") == 2
    line = _one_error(capsys)
    assert "Bogus" in line and "CPUExecutionProvider" in line
    assert stored_rows() == []


def test_provider_not_available_names_available(served, env, tiny_onnx_model, capsys):
    assert _bad(served, tiny_onnx_model, "--provider", "CUDAExecutionProvider") == 2
    line = _one_error(capsys)
    assert "CUDA" in line and "CPUExecutionProvider" in line
    assert stored_rows() == []


def test_wrong_input_name(served, env, tiny_onnx_model, capsys):
    assert _bad(served, tiny_onnx_model, "--input-shape", "nosuch=1x64") == 2
    assert "nosuch" in _one_error(capsys)


def test_wrong_input_shape(served, env, tiny_onnx_model, capsys):
    assert _bad(served, tiny_onnx_model, "--input-shape", "x=1x63") == 2
    line = _one_error(capsys)
    assert "x" in line and "63" in line
    assert stored_rows() == []


def test_malformed_option_is_usage_error(served, env, tiny_onnx_model, capsys):
    assert _bad(served, tiny_onnx_model, "--input-shape", "x=1xfoo") == 2
    assert "bad input shape" in _one_error(capsys)
    assert main(["bench", str(tiny_onnx_model), "--threads", "0"]) == 2


def test_unreachable_agent(env, tiny_onnx_model, capsys):
    assert main(["bench", "--agent", "127.0.0.1:1", str(tiny_onnx_model), *FAST]) == 2
    assert "unreachable" in _one_error(capsys)


def test_wrong_token(env, tmp_path, tiny_onnx_model, capsys):
    tok = tmp_path / "tok"
    tok.write_text("right-token\n")
    bad = tmp_path / "bad"
    bad.write_text("wrong-token\n")
    ap = spawn_agent(tmp_path / "tokstate", "--token-file", str(tok))
    try:
        assert main(["info", "--agent", ap.address, "--token-file", str(bad)]) == 2
        assert "token" in _one_error(capsys)
        assert main(["info", "--agent", ap.address, "--token-file", str(tok), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["schema"] == "edgebench.info/v1"
    finally:
        ap.stop()


def test_fetch_and_compare(served, env, tiny_onnx_model, capsys):
    a, b = env / "a.json", env / "b.json"
    assert main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST, "--json", str(a)]) == 0
    assert main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST, "--json", str(b)]) == 0
    ra, rb = json.loads(a.read_text())["run_id"], json.loads(b.read_text())["run_id"]
    capsys.readouterr()
    assert main(["compare", ra, rb]) == 0
    out = capsys.readouterr().out
    assert "throughput" in out and "placement unchanged" in out
    # fetch into a fresh DB: result + run files
    fresh = f"sqlite:///{env / 'fresh.db'}"
    assert main(["fetch", ra, "--agent", served.address, "--db", fresh, "--out", str(env / "f")]) == 0
    assert (env / "f" / "result.json").is_file() and (env / "f" / "spec.json").is_file()
    db = ResultsDB(fresh)
    assert db.get(ra)["run_id"] == ra
    db.close()
    html = env / "r.html"
    assert main(["report", str(env / "f" / "result.json"), "--html", str(html)]) == 0
    assert ra in html.read_text()
    assert main(["report", str(env / "f" / "spec.json")]) == 2
    assert "not an edgebench result" in _one_error(capsys)


def test_placement_command_prints_table(served, env, tiny_onnx_model, capsys):
    assert (
        main(["placement", "--agent", served.address, str(tiny_onnx_model), "--quiet", "--no-telemetry"]) == 0
    )
    out = capsys.readouterr().out
    assert "MatMul" in out and "no CPU fallback" in out


def test_cli_subprocess_unreachable_prints_one_line(tiny_onnx_model, tmp_path):
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "edgebench"
    p = subprocess.run(
        [str(exe), "info", "--agent", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"EDGEBENCH_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert p.returncode == 2
    assert p.stderr.strip().startswith("edgebench: error: ") and len(p.stderr.strip().splitlines()) == 1


def test_cli_subprocess_bench_served(served, tiny_onnx_model, tmp_path):
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "edgebench"
    out = tmp_path / "s.json"
    p = subprocess.run(
        [str(exe), "bench", "--agent", served.address, str(tiny_onnx_model), *FAST, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "EDGEBENCH_DB": f"sqlite:///{tmp_path / 's.db'}",
            "EDGEBENCH_HOME": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["status"] == "completed"


@pytest.mark.parametrize("gate", [["--max-cpu-ops", "0"], ["--max-partitions", "1"]])
def test_finer_placement_gates_exit_3(served, env, tmp_path, capsys, gate):
    from controller.models.tflite_builder import add_cumsum_add

    model = add_cumsum_add(tmp_path / "acs.tflite")
    assert main(["bench", "--agent", served.address, str(model), *FAST, *gate]) == 3
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert stored_rows()[0]["gates_passed"] is False


def test_plain_progress_lines_when_not_a_tty(served, env, tiny_onnx_model, capsys):
    args = ["bench", "--agent", served.address, str(tiny_onnx_model), "--warmup", "0", "--duration", "1.2"]
    assert main([*args, "--min-iterations", "5", "--no-telemetry"]) == 0
    err = capsys.readouterr().err
    assert "phase measure" in err and "inf/s" in err and "\x1b[" not in err


def test_push_info_and_agent_run_list(served, env, tiny_onnx_model, capsys):
    import hashlib

    sha = hashlib.sha256(tiny_onnx_model.read_bytes()).hexdigest()
    assert main(["push", "--agent", served.address, str(tiny_onnx_model)]) == 0
    assert capsys.readouterr().out.split() == [sha, str(tiny_onnx_model)]
    assert main(["push", "--agent", served.address, "missing.onnx"]) == 2
    assert "file not found" in _one_error(capsys)
    assert main(["info", "--agent", served.address]) == 0
    assert "profile generic-linux" in capsys.readouterr().out
    assert main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST]) == 0
    capsys.readouterr()
    assert main(["runs", "--agent", served.address, "--limit", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert 1 <= len(lines) <= 3 and all(" bench " in ln or " placement " in ln for ln in lines)


def test_usage_errors_are_one_line(env, capsys):
    assert main(["bench"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "edgebench: error: the following arguments are required: model (see edgebench bench --help)"
    ]


def test_a_soak_target_on_a_bench_is_refused_not_ignored(served, env, tiny_onnx_model, capsys):
    assert _bad(served, tiny_onnx_model, "--target-ips", "5") == 2
    assert "--target-ips is the sustained-throughput target of a soak" in _one_error(capsys)
    assert stored_rows() == []


def test_fetch_waits_for_a_run_whose_controller_went_away(served, env, tiny_onnx_model, capsys):
    from agent.spec import RunSpec
    from controller.client import AgentClient

    with AgentClient(served.address) as c:  # a controller that starts a run and disconnects
        sha = c.push(tiny_onnx_model)
        rid = c.start_run(
            RunSpec(kind="bench", model_sha256=sha, model_name="m.onnx", warmup_s=0, duration_s=1.0)
        )
    assert main(["fetch", rid, "--agent", served.address, "--no-files"]) == 0
    assert f"{rid}: completed" in capsys.readouterr().out
    assert stored_rows()[0]["run_id"] == rid and (env / "edgebench-runs" / rid / "result.json").is_file()


def test_runs_filters_hold_on_the_agent_and_in_the_db_alike(served, env, tiny_onnx_model, capsys):
    """`runs --agent --status/--kind/--model` lists only matching runs (it listed every
    run), exactly as the local DB listing filters the same runs."""
    import hashlib

    sha = hashlib.sha256(tiny_onnx_model.read_bytes()).hexdigest()
    assert main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST]) == 0
    assert main(["placement", "--agent", served.address, str(tiny_onnx_model), "--quiet"]) == 0
    capsys.readouterr()

    def listed(*flags: str, agent: bool) -> list[str]:
        where = ["--agent", served.address] if agent else []
        assert main(["runs", *where, "--limit", "50", *flags]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        return sorted(ln.split()[0] for ln in lines if ln and not ln.startswith("run_id"))

    stored = set(listed(agent=False))  # this test's two runs; the shared agent has more
    for flags in (
        ("--status", "completed"),
        ("--status", "running"),
        ("--kind", "placement"),
        ("--kind", "bench", "--status", "completed"),
        ("--model", "tiny.onnx"),
        ("--model", sha[:12]),
        ("--model", "other.onnx"),
    ):
        on_agent = [r for r in listed(*flags, agent=True) if r in stored]
        assert on_agent == listed(*flags, agent=False), flags
    assert listed("--status", "running", agent=True) == []
    assert len(listed("--kind", "placement", agent=False)) == 1


@pytest.mark.parametrize(
    "flags", [["--status", "bogus"], ["--kind", "bogus"], ["--limit", "0"], ["--limit", "-1"]]
)
def test_runs_refuses_a_filter_it_does_not_know(env, flags, capsys):
    assert main(["runs", *flags]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["dir", "/proc/edgebench-x.json"])
def test_an_unwritable_json_is_refused_before_the_run_and_nothing_is_stored(
    served, env, tiny_onnx_model, capsys, where
):
    target = str(env) if where == "dir" else where
    for cmd in (["bench"], ["placement"]):
        args = [*cmd, "--agent", served.address, str(tiny_onnx_model), "--json", target, "--quiet"]
        assert main(args + (FAST[:-1] if cmd == ["bench"] else [])) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--json {target}" in err[0], err
    assert stored_rows() == []
