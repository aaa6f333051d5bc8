"""What a new user of trtexec / onnxruntime_perf_test / jtop runs into (issue
12): a missing results DB or rich, dynamic shapes, the telemetry rate, cancel,
--version, the next-steps line, the runs table, broken pipes, a taken metrics
port, an ambiguous run id and an agent error's wording. Real agents, real CLI."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, spawn_agent, wait_until

from agent.runtimes.base import resolve_shape
from controller.cli import main
from controller.db import ResultsDB

FAST = ["--warmup", "0", "--duration", "0.3", "--min-iterations", "5", "--no-telemetry", "--quiet"]
HINT = "pip install 'edgebench[controller]'"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("agent")
    ap = spawn_agent(d / "state")
    yield ap
    ap.stop()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _hide(monkeypatch, *modules: str) -> None:
    """Make third-party modules unimportable, as on a board-only install."""
    for name in list(sys.modules):
        if name.split(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def _errors(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("edgebench: error: ")]


def _dynamic_model(path: Path, dims: list) -> Path:
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["image"], ["y"], name="relu")],
        "dyn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path.write_bytes(m.SerializeToString())
    return path


# -- the board-only install, in process (tests/agent/test_board_install.py runs the real venv)


def test_bench_without_sqlalchemy_writes_json_and_says_how_to_get_the_db(
    served, env, tiny_onnx_model, capsys, monkeypatch
):
    _hide(monkeypatch, "sqlalchemy")
    rc = main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST, "--json", "r.json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert json.loads((env / "r.json").read_text())["status"] == "completed"
    assert _errors(out.err) == []
    hints = [line for line in out.err.splitlines() if HINT in line]
    assert len(hints) == 1 and "r.json" in hints[0], out.err


def test_progress_on_a_tty_without_rich_is_plain_lines(served, env, tiny_onnx_model, capsys, monkeypatch):
    _hide(monkeypatch, "rich")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    args = ["bench", "--agent", served.address, str(tiny_onnx_model), "--warmup", "0", "--duration", "1.2"]
    rc = main([*args, "--min-iterations", "5", "--no-telemetry", "--json", "r.json"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "phase measure" in err and re.search(r"\d+ it ", err), err


def test_runs_report_and_demo_without_their_packages_say_so_in_one_line(env, capsys, monkeypatch):
    _hide(monkeypatch, "sqlalchemy", "matplotlib", "onnx")
    assert main(["runs"]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert "sqlalchemy" in line and HINT in line and "--agent" in line
    assert main(["report", "20260101"]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert "no such file: 20260101" in line and HINT in line
    (env / "r.json").write_text(json.dumps({"run_id": "x", "kind": "bench", "status": "completed"}))
    assert main(["report", "r.json", "--html", "r.html"]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert "matplotlib" in line and HINT in line and not (env / "r.html").exists()
    assert main(["demo", "--out", "d"]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert "onnx" in line and HINT in line and "edgebench bench MODEL.onnx" in line


def test_controller_cli_imports_no_heavy_package_at_startup():
    code = (
        "import sys, controller.cli; "
        "print([m for m in ('sqlalchemy', 'rich', 'matplotlib', 'onnx') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- next steps and the runs table


def test_bench_says_where_the_result_went_and_how_to_make_the_html_report(
    served, env, tiny_onnx_model, capsys
):
    rc = main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST, "--json", "r.json"])
    err = capsys.readouterr().err
    assert rc == 0, err
    run_id = json.loads((env / "r.json").read_text())["run_id"]
    (line,) = [x for x in err.splitlines() if x.startswith("saved to ")]
    assert "r.json" in line and f"results DB sqlite:///{env / 'r.db'}" in line
    assert f"edgebench report {run_id} --html report.html" in line


def test_demo_says_where_the_result_went(env, capsys):
    assert main(["demo", "--out", "d", "--warmup", "0.1", "--duration", "0.3", "--no-pipeline"]) == 0
    run_id = json.loads((env / "d" / "result.json").read_text())["run_id"]
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("saved to ")]
    assert f"d/{run_id}.json" in line and "results DB sqlite:///" in line
    assert f"edgebench report {run_id} --html report.html" in line


def test_runs_shows_the_agent_column(served, env, tiny_onnx_model, capsys):
    assert main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST]) == 0
    capsys.readouterr()
    assert main(["runs"]) == 0
    head, row = capsys.readouterr().out.splitlines()[:2]
    assert head.split()[:4] == ["run_id", "kind", "status", "agent"]
    assert row.split()[3] == served.address


# -- shapes actually run, and the defaults that silently changed them


def test_dynamic_spatial_dims_are_an_error_naming_the_input(served, env, tmp_path, capsys):
    model = _dynamic_model(tmp_path / "dyn.onnx", ["N", 3, "H", "W"])
    assert main(["bench", "--agent", served.address, str(model), *FAST, "--json", "r.json"]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert "input 'image'" in line and "--input-shape image=1x3xHxW" in line
    assert not (env / "r.json").exists()


def test_dynamic_batch_runs_as_1_with_a_note_and_the_shapes_are_stored(served, env, tmp_path, capsys):
    model = _dynamic_model(tmp_path / "dynb.onnx", ["N", 3, 8, 8])
    rc = main(["bench", "--agent", served.address, str(model), *FAST, "--json", "r.json"])
    out = capsys.readouterr().out
    assert rc == 0
    (inp,) = json.loads((env / "r.json").read_text())["inputs"]
    assert inp["name"] == "image" and inp["shape"] == [1, 3, 8, 8] and inp["dtype"] == "float32"
    assert "--input-shape image=Nx3x8x8" in inp["note"]
    assert "input     image 1x3x8x8 float32" in out and "dynamic batch ran as 1" in out
    # given a shape: that shape runs and is stored, without a note
    rc = main(["bench", "--agent", served.address, str(model), *FAST, "--input-shape", "image=2x3x8x8"])
    capsys.readouterr()
    db = ResultsDB()
    (row,) = [r for r in db.query(limit=1)]
    (inp,) = db.get(row["run_id"])["inputs"]
    db.close()
    assert rc == 0 and inp["shape"] == [2, 3, 8, 8] and "note" not in inp


def test_placement_and_soak_store_the_shapes_run(served, env, tiny_onnx_model, capsys):
    assert main(["placement", "--agent", served.address, str(tiny_onnx_model), "--no-telemetry"]) == 0
    assert "saved to results DB sqlite:///" in capsys.readouterr().err
    soak = ["soak", "--agent", served.address, str(tiny_onnx_model), "--duration", "0.6", "--window", "0.2"]
    assert main([*soak, "--warmup", "0", "--no-telemetry", "--json", "s.json"]) == 0
    capsys.readouterr()
    db = ResultsDB()
    docs = [db.get(r["run_id"]) for r in db.query(limit=None)]
    db.close()
    assert {d["kind"] for d in docs} == {"placement", "soak"}
    for d in docs:
        assert d["inputs"] == [{"name": "x", "shape": [1, 64], "dtype": "float32"}]


def test_resolve_shape_reads_litert_numpy_dims():
    sig = [np.int32(-1), np.int32(224), np.int32(224), np.int32(3)]
    assert resolve_shape("x", [d if d > 0 else None for d in sig], None) == [1, 224, 224, 3]
    with pytest.raises(Exception, match=r"--input-shape x=1xD1x224x3"):
        resolve_shape("x", [None, None, 224, 3], None)


@pytest.mark.parametrize("rate", ["0", "-1", "1001", "nan"])
def test_telemetry_rate_outside_0_1000_is_a_usage_error(env, tiny_onnx_model, capsys, rate):
    assert main(["bench", str(tiny_onnx_model), "--telemetry-rate", rate]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(0, 1000]" in err


# -- cancel and --version


def test_cancel_a_running_remote_run_then_unknown_and_finished(served, env, tiny_onnx_model, capsys):
    from controller.client import AgentClient

    with AgentClient(served.address) as client:
        sha = client.push(tiny_onnx_model)
        run_id = client.start_run(
            {"kind": "bench", "model_sha256": sha, "model_name": "m.onnx", "duration_s": 60, "warmup_s": 0}
        )
        assert wait_until(lambda: client.get_run(run_id)["status"] == "running", timeout=20)
        assert main(["cancel", "--agent", served.address, run_id]) == 0
        assert capsys.readouterr().out.strip() == f"run {run_id} cancelled"
        assert client.get_run(run_id)["status"] == "cancelled"
        # cancelling it again: it has ended, like any ended run (it said "cancelled", exit 0)
        assert main(["cancel", "--agent", served.address, run_id]) == 2
        (line,) = _errors(capsys.readouterr().err)
        assert line == f"edgebench: error: run {run_id} already cancelled: nothing to cancel"
    assert main(["cancel", "--agent", served.address, "20250101T000000000Z-abcdef"]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line == "edgebench: error: no run 20250101T000000000Z-abcdef"
    rc = main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST, "--json", "r.json"])
    done = json.loads((env / "r.json").read_text())["run_id"]
    capsys.readouterr()
    assert rc == 0 and main(["cancel", "--agent", served.address, done]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line == f"edgebench: error: run {done} already completed: nothing to cancel"
    assert main(["cancel", done]) == 2
    assert "--agent" in _errors(capsys.readouterr().err)[0]


@pytest.mark.parametrize("script", ["edgebench", "edgebench-agent"])
def test_version_names_the_package_and_the_runtimes_found(script):
    exe = Path(sys.executable).parent / script
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, *rest = out.stdout.splitlines()
    assert re.fullmatch(rf"{script} \d+\.\d+\.\S+ \(python 3\.\d+\.\d+\)", first)
    assert any(line.strip().startswith("onnxruntime 1.") and "CPUExecutionProvider" in line for line in rest)


# -- small defects


def test_ambiguous_run_id_prefix_lists_the_candidates(env, capsys):
    db = ResultsDB()
    ids = [f"20260301T0000{i:02d}000Z-abcde{i}" for i in range(7)]
    for i, run_id in enumerate(ids):
        db.store({"run_id": run_id, "kind": "bench", "status": "completed", "created_unix": 1e9 + i})
    db.close()
    assert main(["report", "2026"]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert "ambiguous run id '2026': 7 runs match" in line
    assert all(run_id in line for run_id in ids[-5:]) and "and 2 more" in line
    assert main(["report", ids[3][:-1]]) == 0  # a unique prefix still finds its run
    assert main(["report", "2027"]) == 2
    assert "no such run or file: 2027" in capsys.readouterr().err


def test_an_accelerator_the_board_lacks_reads_without_an_rpc_prefix(served, env, tiny_onnx_model, capsys):
    rc = main(["bench", "--agent", served.address, str(tiny_onnx_model), *FAST, "--accelerator", "npu"])
    assert rc == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line.startswith("edgebench: error: profile ") and "has no accelerator" in line
    assert "start run" not in line


def test_a_taken_metrics_port_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        exe = Path(sys.executable).parent / "edgebench-agent"
        args = ["serve", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "st")]
        out = subprocess.run(
            [str(exe), *args, "--metrics-port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (
        f"edgebench-agent: error: cannot serve /metrics on 127.0.0.1:{port}: Address already in use"
    )


def _closed_pipe_run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run with stdout a pipe whose reader has already gone: every write fails."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(cmd, stdout=w, stderr=subprocess.PIPE, text=True, timeout=120, env=env)
    finally:
        os.close(w)


def test_a_reader_that_leaves_the_pipe_ends_both_commands_quietly(env):
    db = ResultsDB()
    for i in range(3):
        db.store({"run_id": f"20260301T00000{i}000Z-abcdef", "kind": "bench", "status": "completed"})
    db.close()
    bindir = Path(sys.executable).parent
    e = {**os.environ, "PYTHONPATH": str(ROOT)}
    for cmd in ([str(bindir / "edgebench"), "runs"], [str(bindir / "edgebench-agent"), "info"]):
        out = _closed_pipe_run(cmd, e)
        assert (out.returncode, out.stderr) == (141, ""), (cmd, out.stderr)
        # the way users meet it: a real `| head`
        sh = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {' '.join(cmd)} | head -1"],
            capture_output=True,
            text=True,
            timeout=120,
            env=e,
        )
        assert sh.stderr == "" and sh.returncode in (0, 141) and len(sh.stdout.splitlines()) == 1


@pytest.mark.parametrize("flag", ["--duration", "--warmup"])
def test_a_negative_duration_with_a_space_is_said_as_negative(flag, capsys):
    """`--duration -5s` was taken for an unknown option ("expected one argument")."""
    from controller.cli import main

    assert main(["bench", "m.onnx", flag, "-5s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"argument {flag}: bad duration '-5s': must not be negative" in err[0]


def test_a_negative_duration_in_a_plan_is_said_as_negative(tmp_path):
    from controller.fleet import options

    with pytest.raises(options.OptionError, match="bad duration '-5s': must not be negative"):
        options.parse("bench", {"duration": "-5s"}, str(tmp_path / "m.onnx"), tmp_path)


def test_no_grpc_log_line_comes_before_the_one_line_error(tmp_path):
    """A port already taken and a --tls-ca that is no PEM file: gRPC's core logged
    its own `E1203 ... add_port.cc` / `ssl_transport_security.cc` lines first."""
    bindir = Path(sys.executable).parent
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    try:
        port = taken.getsockname()[1]
        serve = [str(bindir / "edgebench-agent"), "serve", "--listen", f"127.0.0.1:{port}"]
        r = subprocess.run([*serve, "--state-dir", str(tmp_path / "s")], capture_output=True, text=True,
                           timeout=60, env=env)  # fmt: skip
    finally:
        taken.close()
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"edgebench-agent: error: cannot listen on 127.0.0.1:{port}: address in use or not available"
    ]
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    info = [str(bindir / "edgebench"), "info", "--agent", "127.0.0.1:1", "--tls-ca", str(tmp_path / "ca.pem")]
    r = subprocess.run(info, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "edgebench: error: --tls-ca: not a PEM file"
    ]


def test_a_text_file_given_as_npz_is_said_to_be_no_npz_not_pickled(tmp_path, capsys):
    from controller.models.onnx_cnn import tiny_cnn

    model = tiny_cnn(tmp_path / "cnn.onnx")
    (tmp_path / "x.npz").write_text("image,1,2,3\n")
    assert (
        main(["reference", str(model), "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / "r.npz")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"edgebench: error: {tmp_path / 'x.npz'} is not an .npz file (numpy.savez writes one)"]


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--min-iterations", "2000000000"], "--min-iterations must be in [1, 1000000000]"),
        (["--duration", "700000"], "--duration must be a number of seconds in [0, 604800] (7 days)"),
    ],
)
def test_a_refused_option_is_named_as_typed_not_as_the_spec_field(tmp_path, flags, said, capsys):
    from controller.models.onnx_cnn import tiny_cnn

    model = tiny_cnn(tmp_path / "cnn.onnx")
    assert main(["bench", str(model), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"edgebench: error: {said}"]
