"""Project-wide contracts: fresh gRPC stubs, and an agent that runs on Python 3.10."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_generated_grpc_stubs_are_fresh():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_stale_stub_is_detected(tmp_path):
    # The freshness check itself must be able to fail: generate into a copy
    # with an edited proto and compare against the committed stubs.
    sys.path.insert(0, str(ROOT / "protos"))
    try:
        import generate  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    proto_copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", proto_copy)
    p = proto_copy / "edgebench/v1/agent.proto"
    p.write_text(p.read_text().replace("message GetInfoRequest {}", "message GetInfoRequest { bool x = 1; }"))
    old = generate.PROTO_DIR
    generate.PROTO_DIR = proto_copy
    try:
        files = generate.generate(tmp_path / "out")
    finally:
        generate.PROTO_DIR = old
    fresh = {f.name: f.read_text() for f in files}
    committed = (ROOT / "agent/rpc/edgebench/v1/agent_pb2.py").read_text()
    assert fresh["agent_pb2.py"] != committed


def _find_python310() -> str | None:
    candidates = [
        shutil.which("python3.10"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10"))),
    ]
    for c in candidates:
        if c and subprocess.run([c, "--version"], capture_output=True).returncode == 0:
            return c
    return None


PY310 = _find_python310()


@pytest.mark.skipif(PY310 is None, reason="python3.10 not installed")
def test_agent_compiles_on_python_310():
    proc = subprocess.run(
        [PY310, "-m", "compileall", "-q", "agent"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_agent_avoids_311_only_modules():
    banned = ("import tomllib", "from tomllib", "except*", "ExceptionGroup", "TaskGroup(", "datetime.UTC")
    hits = []
    for f in (ROOT / "agent").rglob("*.py"):
        if "rpc/edgebench" in f.as_posix():
            continue
        text = f.read_text()
        hits += [f"{f.relative_to(ROOT)}: {b}" for b in banned if b in text]
    assert not hits, hits
