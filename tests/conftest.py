"""Shared fixtures: a real agent on loopback (in-process or as a subprocess),
a gRPC stub on it, artifact push, and a tiny ONNX model built here.

    def test_x(agent, push):                # in-process AgentServer, temp state dir
        sha = push(agent.stub, some_path)
    def test_y(agent_process):              # `edgebench-agent serve` subprocess
        proc = agent_process(extra_args)    # -> AgentProcess(.address, .stub, .kill(), .stop())
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from agent.load.task import sha256_file
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.rpc.edgebench.v1 import agent_pb2_grpc as pb_grpc
from agent.store.paths import artifact_path

ROOT = Path(__file__).resolve().parent.parent
AGENT_BIN = Path(sys.executable).parent / "edgebench-agent"
# the agent in .venv-openvino: ONNX Runtime's OpenVINO EP, a real partitioning EP
OV_AGENT = ROOT / ".venv-openvino" / "bin" / "edgebench-agent"
CHUNK = 1 << 20
T = TypeVar("T")


def wait_until(cond: Callable[[], T], timeout: float = 20.0, step: float = 0.02) -> T:
    """Poll ``cond()`` until it is truthy or ``timeout`` s pass; its last value
    (falsy on a timeout), so ``assert wait_until(...)`` states what was awaited.
    The one bounded wait of the suite: no fixed sleep stands in for it."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got or time.monotonic() >= deadline:
            return got
        time.sleep(step)


def put_artifact(state_dir: Path, path: Path) -> str:
    """Place a file in a state dir's artifact store as a push would; its sha256."""
    sha = sha256_file(path)
    dst = artifact_path(state_dir, sha)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, dst)
    return sha


def make_stub(
    address: str,
    token: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    server_name: str | None = None,
) -> pb_grpc.AgentStub:
    """A raw generated stub; with a token every call carries it."""
    opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    if credentials is not None:
        channel = grpc.secure_channel(address, credentials, options=opts)
    else:
        channel = grpc.insecure_channel(address, options=opts)
    if token:
        channel = grpc.intercept_channel(channel, _TokenAdder(token))
    return pb_grpc.AgentStub(channel)


class _TokenAdder(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, token: str) -> None:
        self.md = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, cont, d, req):
        return cont(_Details(d, list(d.metadata or []) + [self.md]), req)

    def intercept_unary_stream(self, cont, d, req):
        return cont(_Details(d, list(d.metadata or []) + [self.md]), req)

    def intercept_stream_unary(self, cont, d, it):
        return cont(_Details(d, list(d.metadata or []) + [self.md]), it)

    def intercept_stream_stream(self, cont, d, it):
        return cont(_Details(d, list(d.metadata or []) + [self.md]), it)


class _Details(grpc.ClientCallDetails):
    def __init__(self, d, metadata):
        self.method = d.method
        self.timeout = d.timeout
        self.metadata = metadata
        self.credentials = d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


def upload_chunks(data_iter, sha: str, size: int, name: str, offset: int = 0):
    yield pb.UploadChunk(header=pb.UploadHeader(sha256=sha, size_bytes=size, name=name, offset=offset))
    yield from (pb.UploadChunk(data=d) for d in data_iter)


def push_file(stub: pb_grpc.AgentStub, path: Path, name: str | None = None) -> str:
    """Stat, then upload from the committed offset unless present; returns the sha."""
    path = Path(path)
    sha = sha256_file(path)
    size = path.stat().st_size
    st = stub.StatArtifact(pb.StatArtifactRequest(sha256=sha))
    if st.present:
        return sha
    offset = st.committed_offset

    def chunks():
        with open(path, "rb") as f:
            f.seek(offset)
            yield from iter(lambda: f.read(CHUNK), b"")

    stub.Upload(upload_chunks(chunks(), sha, size, name or path.name, offset))
    return sha


@pytest.fixture
def push() -> Callable[..., str]:
    return push_file


@dataclass
class CliRun:
    rc: int
    out: str
    err: str
    result: dict | None  # the --json document, when the command wrote one


@pytest.fixture
def run_cli(tmp_path, monkeypatch, capsys) -> Callable[..., CliRun]:
    """The one in-process runner of ``edgebench``:
    ``run_cli(*argv, agent=ADDR, quiet=True, db_json=True) -> CliRun``.
    EDGEBENCH_HOME is in the test's tmp dir. ``agent`` adds ``--agent ADDR``
    (and, with ``quiet``, ``--quiet --no-telemetry``); ``db_json`` adds the
    test's results DB (``run_cli.db``) and a fresh ``--json FILE``, read back
    into ``result``."""
    from controller.cli import main

    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    db = f"sqlite:///{tmp_path / 'results.db'}"
    calls = iter(range(1_000_000))

    def run(*argv: str, agent: str | None = None, quiet: bool = True, db_json: bool = True) -> CliRun:
        args = [str(a) for a in argv]
        if agent is not None:
            args += ["--agent", agent] + (["--quiet", "--no-telemetry"] if quiet else [])
        out = tmp_path / f"cli-{next(calls)}.json"
        if db_json:
            args += ["--db", db, "--json", str(out)]
        rc = main(args)
        cap = capsys.readouterr()
        return CliRun(rc, cap.out, cap.err, json.loads(out.read_text()) if out.exists() else None)

    run.db = db
    return run


def agent_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``edgebench-agent ARGS`` as a subprocess, output captured as text."""
    return subprocess.run([str(AGENT_BIN), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_onnx_model(tmp_path_factory) -> Path:
    """A real, tiny ONNX model (MatMul + Add + Relu, 1x64 -> 1x64) built with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((64,)).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["add"]),
            helper.make_node("Relu", ["add"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    onnx.save(model, path)
    return path


@dataclass
class InProcessAgent:
    server: object
    address: str
    state_dir: Path
    stub: pb_grpc.AgentStub


@pytest.fixture
def agent_factory(tmp_path) -> Iterator[Callable[..., InProcessAgent]]:
    """Start in-process AgentServers: ``agent_factory(**AgentServer kwargs)``."""
    from agent.server.app import AgentServer

    started: list[AgentServer] = []

    def start(**kwargs) -> InProcessAgent:
        kwargs.setdefault("state_dir", tmp_path / f"state{len(started)}")
        token = kwargs.get("token")
        server = AgentServer(**kwargs)
        address = server.start()
        started.append(server)
        return InProcessAgent(server, address, Path(kwargs["state_dir"]), make_stub(address, token=token))

    yield start
    for s in started:
        s.stop(0)


@pytest.fixture
def agent(agent_factory) -> InProcessAgent:
    """An in-process agent on 127.0.0.1 (any port) with a temp state dir."""
    return agent_factory()


@pytest.fixture(scope="module")
def shared_agent(tmp_path_factory) -> Iterator[InProcessAgent]:
    """One in-process agent for a whole test module: for tests that only push
    and run on it and assert nothing about its state dir (each keeps its own
    results DB through run_cli)."""
    from agent.server.app import AgentServer

    state_dir = tmp_path_factory.mktemp("shared-agent") / "state"
    server = AgentServer(state_dir=state_dir)
    address = server.start()
    yield InProcessAgent(server, address, state_dir, make_stub(address))
    server.stop(0)


@dataclass
class AgentProcess:
    proc: subprocess.Popen
    address: str
    state_dir: Path
    stub: pb_grpc.AgentStub
    log_path: Path
    args: list[str] = field(default_factory=list)
    banner: list[str] = field(default_factory=list)  # stdout lines before "listening on"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def spawn_agent(
    state_dir: Path,
    *args: str,
    token: str | None = None,
    timeout: float = 30.0,
    agent_bin: Path | None = None,
    env: dict[str, str] | None = None,
) -> AgentProcess:
    """``edgebench-agent serve --listen 127.0.0.1:0 --state-dir DIR ARGS``; waits for
    its ``listening on HOST:PORT`` line. ``agent_bin`` runs another venv's agent
    (.venv-openvino's), ``env`` adds to the environment."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir.parent / f"{state_dir.name}-agent-{time.monotonic_ns()}.log"
    cmd = [
        str(agent_bin or AGENT_BIN),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        str(state_dir),
        *args,
    ]
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, cwd=ROOT, env={**os.environ, **(env or {})}
    )
    log.close()
    deadline = time.monotonic() + timeout
    line = b""
    banner: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(b"listening on ") or not line:
            break
        banner.append(line.decode(errors="replace").rstrip("\n"))
    if not line.startswith(b"listening on "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"agent did not start: {log_path.read_text(errors='replace')[-2000:]}")
    address = line.decode().split()[-1]
    stub = make_stub(address, token=token)
    return AgentProcess(proc, address, state_dir, stub, log_path, list(args), banner)


@pytest.fixture
def agent_process(tmp_path) -> Iterator[Callable[..., AgentProcess]]:
    """Start ``edgebench-agent serve`` subprocesses: ``agent_process(*args, state_dir=None, token=None)``."""
    procs: list[AgentProcess] = []

    def start(*args: str, state_dir: Path | None = None, token: str | None = None) -> AgentProcess:
        ap = spawn_agent(state_dir or tmp_path / "state", *args, token=token)
        procs.append(ap)
        return ap

    yield start
    for ap in procs:
        if ap.proc.poll() is None:
            ap.proc.kill()
            ap.proc.wait()


@pytest.fixture(scope="session")
def ov_agent(tmp_path_factory) -> Iterator[AgentProcess]:
    """One .venv-openvino agent for the session (the placement and validate
    OpenVINO tests share it: they only push and run, and an OpenVINO agent is
    slow to start)."""
    ap = spawn_agent(tmp_path_factory.mktemp("ov") / "state", agent_bin=OV_AGENT)
    yield ap
    ap.stop()


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    """A results DB, an EDGEBENCH_HOME and the working directory, all in tmp_path."""
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def stored_rows() -> list[dict]:
    """Every run in the DB ``env`` set up, newest first."""
    from controller.db import ResultsDB

    db = ResultsDB()
    try:
        return db.query(limit=None)
    finally:
        db.close()


def inner_reshape_model(path: Path) -> Path:
    """x: N x 6, reshaped to (-1, 4) by a node named inner_reshape: any input
    that fits the declared shape with N odd fails inside the model."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([-1, 4], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="inner_reshape")],
        "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path
