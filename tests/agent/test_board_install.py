"""The board-only install (``make boardonly``: ``.venv-board``, ``pip install -e
'.[onnx]'``, no ``[controller]`` extra): the real ``edgebench`` and
``edgebench-agent`` console scripts of that venv, and the README's board
quick start run verbatim from it (issue 12)."""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

VENV = ROOT / ".venv-board"
BIN = VENV / "bin"
HINT = "pip install 'edgebench[controller]'"

pytestmark = pytest.mark.skipif(
    not (BIN / "edgebench").exists(), reason=".venv-board (make boardonly) is missing"
)


@pytest.fixture
def home(tmp_path, tiny_onnx_model):
    """A clean HOME and working directory holding model.onnx, as on a fresh board."""
    (tmp_path / "model.onnx").write_bytes(tiny_onnx_model.read_bytes())
    return tmp_path


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEBENCH_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}")
    return env


def _run(home: Path, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / cmd[0]), *cmd[1:]],
        cwd=home,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_error(err: str) -> str:
    assert "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    return line


def test_the_venv_is_the_board_only_install():
    code = "import importlib.util as u; print([m for m in ('sqlalchemy', 'rich', 'matplotlib', 'onnx', 'platformdirs') if u.find_spec(m)])"  # noqa: E501
    out = subprocess.run([str(BIN / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bench_writes_the_json_and_one_line_says_how_to_get_the_db(home):
    out = _run(home, "edgebench", "bench", "model.onnx", "--duration", "2", "--json", "r.json")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    doc = json.loads((home / "r.json").read_text())
    assert doc["status"] == "completed" and doc["iterations"] > 0
    assert doc["inputs"] == [{"name": "x", "shape": [1, 64], "dtype": "float32"}]
    (line,) = [x for x in out.stderr.splitlines() if HINT in x]
    assert line.startswith("saved to r.json; no results DB") and "edgebench report r.json" in line
    assert "latency ms" in out.stdout and "throughput" in out.stdout


def test_bench_on_a_tty_without_rich_shows_plain_progress(home):
    """stdout and stderr on a pseudo-terminal: rich would be chosen there."""
    primary, secondary = pty.openpty()
    cmd = [str(BIN / "edgebench"), "bench", "model.onnx", "--warmup", "0", "--duration", "1.5"]
    proc = subprocess.Popen(
        [*cmd, "--json", "r.json"], cwd=home, env=_env(home), stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.wait(timeout=60) == 0, text
    assert "Traceback" not in text and "No module named" not in text
    assert "phase measure" in text and re.search(r"\d+ it ", text)
    assert (home / "r.json").is_file()


def test_runs_report_and_demo_work_or_say_what_they_need(home):
    out = _run(home, "edgebench", "runs")
    assert out.returncode == 2 and "sqlalchemy" in _one_error(out.stderr) and HINT in out.stderr
    assert (
        _run(home, "edgebench", "bench", "model.onnx", "--duration", "0.3", "--json", "r.json").returncode
        == 0
    )
    out = _run(home, "edgebench", "report", "r.json")
    assert out.returncode == 0 and "latency ms" in out.stdout, out.stderr
    out = _run(home, "edgebench", "report", "r.json", "--md", "r.md")
    assert out.returncode == 0 and (home / "r.md").is_file(), out.stderr
    out = _run(home, "edgebench", "report", "r.json", "--html", "r.html")
    assert out.returncode == 2 and "matplotlib" in _one_error(out.stderr) and HINT in out.stderr
    assert not (home / "r.html").exists()
    out = _run(home, "edgebench", "demo")
    assert out.returncode == 2 and "onnx" in _one_error(out.stderr) and HINT in out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_board_commands() -> list[str]:
    """The shell commands of README.md's board quick start (the sh blocks before
    "On the host"), continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start on a real board", 1)[1].split("On the host", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [c.strip() for b in blocks for c in b.replace("\\\n", " ").splitlines() if c.strip()]


def test_readme_board_quick_start_runs_verbatim(home):
    commands = readme_board_commands()
    assert any(c.startswith("edgebench-agent serve") for c in commands)
    assert any(c.startswith("edgebench bench") for c in commands)
    for cmd in commands:
        if cmd.startswith("pip install"):
            continue  # .venv-board is that install (test_the_venv_is_the_board_only_install)
        if cmd.startswith("edgebench-agent serve"):
            _serve(home, cmd)
            continue
        out = subprocess.run(
            ["bash", "-c", cmd], cwd=home, env=_env(home), capture_output=True, text=True, timeout=180
        )
        assert out.returncode == 0, (cmd, out.stderr)
        assert "Traceback" not in out.stderr and "error" not in out.stderr, (cmd, out.stderr)
    assert len((home / ".edgebench-token").read_text().strip()) == 32
    assert json.loads((home / "result.json").read_text())["status"] == "completed"


def _serve(home: Path, cmd: str) -> None:
    """The serve line as written, on free ports (50551 and 9464 may be taken on a
    shared machine): it listens, serves /metrics, answers with the token, stops on SIGTERM."""
    grpc_port, metrics_port = _free_port(), _free_port()
    cmd = cmd.replace(":50551", f":{grpc_port}").replace(
        "--metrics-port 9464", f"--metrics-port {metrics_port}"
    )
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {cmd}"],
        cwd=home,
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith(b"listening on "):
            line = proc.stdout.readline()
            assert line, proc.stderr.read().decode()
            lines.append(line)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            assert b"edgebench_" in r.read()
        info = subprocess.run(
            shlex.split(f"edgebench info --agent 127.0.0.1:{grpc_port} --token-file .edgebench-token --json"),
            cwd=home,
            env=_env(home),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert info.returncode == 0 and json.loads(info.stdout)["profile"], info.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert (home / ".edgebench").is_dir()


def test_a_sweep_runs_on_the_board_only_install(home):
    """No DB, no matplotlib: the sweep runs, its table and JSON are written; a plot is refused first."""
    args = [
        "edgebench",
        "bench",
        "model.onnx",
        "--sweep",
        "threads=1,2",
        "--duration",
        "0.3",
        "--warmup",
        "0",
    ]
    out = _run(home, *args, "--quiet", "--json", "s.json", "--md", "s.md")
    assert out.returncode == 0, out.stderr
    doc = json.loads((home / "s.json").read_text())
    assert [p["threads"] for p in doc["points"]] == [1, 2] and all(p["run_id"] for p in doc["points"])
    assert "| threads | samples/s |" in (home / "s.md").read_text()
    assert out.stdout.strip().splitlines()[-1].startswith("best (most samples/s): threads=")
    refused = _run(home, *args, "--html", "s.html")
    assert refused.returncode == 2
    assert (
        _one_error(refused.stderr)
        == f"edgebench: error: the sweep plot (--plot, --html) needs matplotlib, not installed here: {HINT}"
    )


def test_the_opencv_backend_is_refused_in_one_line_on_a_board_without_opencv(home):
    """The board-only install has no cv2: a resize that asks for OpenCV is
    refused before anything runs; the numpy backend runs the same pipeline."""
    import numpy as np

    from controller.models import ppocr

    if ppocr.models_dir() is None:
        pytest.skip("the rapidocr-onnxruntime wheel is missing")
    (home / "cls.onnx").write_bytes(ppocr.model_path(ppocr.CLASSIFIER).read_bytes())
    frames = np.random.default_rng(0).integers(0, 255, (2, 60, 200, 3), dtype=np.uint8)
    np.savez(home / "frames.npz", frames=frames)
    stages = "  - normalize: {mean: 0.5, std: 0.5}\n  - model: {name: cls, path: cls.onnx}\n"
    stages += "  - topk: {k: 1}\n"
    run = ["edgebench", "pipeline", "cls.yaml", "--inputs", "frames.npz", "--duration", "0.3"]
    run += ["--warmup", "0"]
    for backend in ("opencv", "numpy"):
        resize = f"  - resize: {{size: [48, 192], backend: {backend}}}\n"
        (home / "cls.yaml").write_text(f"name: cls\nstages:\n{resize}{stages}")
        out = _run(home, *run, "--quiet", "--json", f"{backend}.json")
        if backend == "opencv":
            assert out.returncode == 2
            assert _one_error(out.stderr) == (
                "edgebench: error: pipeline cls stage 1 (resize): backend opencv needs OpenCV (cv2), "
                "which this board lacks; use backend: numpy"
            )
            assert not (home / "opencv.json").exists()
        else:
            assert out.returncode == 0, out.stderr
            doc = json.loads((home / "numpy.json").read_text())
            assert doc["pipeline"]["stages"][0]["backend"] == "numpy"
