"""Faults on the agent's run path (issue 13): a full disk, a worker stuck in a
native call, a run that never ends, a flood of queued runs. Each fails one
run, never the agent: the next run starts, and health says whether the agent
can work."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from conftest import wait_until
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.runs import journal as journal_mod
from agent.runs import registry as registry_mod
from agent.spec import RunSpec

TASK = f"{__name__}:fault_task"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def fault_task(spec: RunSpec, run_dir: Path, send) -> None:
    """A worker task whose behaviour the spec's ``do`` label picks."""
    do = spec.labels.get("do", "quick")
    send({"type": "phase", "phase": "load", "t_ns": time.monotonic_ns()})
    if do == "hang":
        # a runtime's native call that SIGTERM does not end (the old worker's
        # Python handler waited for the call to return; here SIGTERM is
        # ignored, as a runtime that takes the signal over may do): only SIGKILL ends it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        send({"type": "phase", "phase": "hang", "t_ns": time.monotonic_ns()})
        ctypes.CDLL(None).sleep(300)
    elif do == "wait":
        # until the test drops the file named in the labels (bounded)
        wait_until(Path(spec.labels["go"]).exists, timeout=60, step=0.05)
        for i in range(3):
            send({"type": "progress", "t_ns": time.monotonic_ns(), "iterations": i, "throughput_ips": 1.0})
    send({"type": "result", "data": {"iterations": 1, "throughput_ips": 1.0}})


def _spec(sha: str, do: str = "quick", **labels) -> dict:
    return {"kind": "bench", "model_sha256": sha, "model_name": "tiny", "warmup_s": 0.0, "duration_s": 0.1,
            "min_iterations": 1, "placement": False, "telemetry": False,
            "labels": {"do": do, **labels}}  # fmt: skip


def _start(agent, spec: dict) -> str:
    return agent.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id


def _get(agent, run_id: str) -> tuple[pb.RunRecord, dict]:
    rec = agent.stub.GetRun(pb.GetRunRequest(run_id=run_id))
    return rec, json.loads(rec.result_json) if rec.result_json else {}


def _health(agent) -> int:
    with grpc.insecure_channel(agent.address) as ch:
        return (
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        )


def _running(agent, run_id: str) -> bool:
    return wait_until(
        lambda: json.loads((agent.state_dir / "runs" / run_id / "state.json").read_text()).get("pid")
    )


def _enospc(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


# -- defect 1: a full disk ----------------------------------------------------------
def test_a_failed_result_write_fails_that_run_and_the_dispatcher_goes_on(
    agent_factory, push, tiny_onnx_model, monkeypatch
):
    agent = agent_factory(task=TASK)
    sha = push(agent.stub, tiny_onnx_model)
    real = registry_mod.write_json_atomic

    def full_for_results(path, data):
        if Path(path).name == "result.json":
            raise _enospc(path)
        return real(path, data)

    monkeypatch.setattr(registry_mod, "write_json_atomic", full_for_results)
    run_id = _start(agent, _spec(sha))
    assert agent.server.runs.wait(run_id, timeout=30) == "failed"
    rec, result = _get(agent, run_id)
    assert rec.status == "failed" and result["error"] == "no space left on device writing result.json"
    assert wait_until(lambda: _health(agent) == NOT_SERVING)
    monkeypatch.undo()
    # the held result reaches the disk once it takes writes again, and health recovers
    assert wait_until(lambda: registry_mod._read_json(agent.state_dir / "runs" / run_id / "result.json"))
    assert wait_until(lambda: _health(agent) == SERVING)
    on_disk = json.loads((agent.state_dir / "runs" / run_id / "state.json").read_text())
    assert on_disk["status"] == "failed" and on_disk["error"] == "no space left on device writing result.json"
    nxt = _start(agent, _spec(sha))
    assert agent.server.runs.wait(nxt, timeout=30) == "completed"


def test_a_disk_that_refuses_every_write_fails_the_run_and_the_next_run_completes_once_it_clears(
    agent_factory, push, tiny_onnx_model, monkeypatch, tmp_path
):
    agent = agent_factory(task=TASK)
    sha = push(agent.stub, tiny_onnx_model)
    go = tmp_path / "go"
    first = _start(agent, _spec(sha, "wait", go=str(go)))
    assert _running(agent, first)
    queued = _start(agent, _spec(sha))

    # from now on no run file, journal record or state can be written
    monkeypatch.setattr(
        registry_mod, "write_json_atomic", lambda path, data: (_ for _ in ()).throw(_enospc(path))
    )
    monkeypatch.setattr(
        journal_mod.Journal, "_write", lambda self, line: (_ for _ in ()).throw(_enospc(self.path))
    )
    go.touch()
    assert agent.server.runs.wait(first, timeout=30) == "failed"
    rec, result = _get(agent, first)
    assert result["error"] == "no space left on device writing journal.jsonl" and "\n" not in result["error"]
    assert wait_until(lambda: _health(agent) == NOT_SERVING)
    assert "no space left on device" in (agent.server.runs.problem() or "")
    # the queued run waits for the disk instead of failing at once: once the
    # dispatcher holds it, it stays queued through a 1 s window (the behaviour, not a wait)
    assert wait_until(lambda: agent.server.runs._queue.empty(), timeout=30)
    assert not wait_until(lambda: _get(agent, queued)[0].status != "queued", timeout=1.0)
    monkeypatch.undo()
    assert agent.server.runs.wait(queued, timeout=30) == "completed"
    assert wait_until(lambda: _health(agent) == SERVING)
    assert all(t.is_alive() for t in agent.server.runs._threads)
    assert json.loads((agent.state_dir / "runs" / first / "state.json").read_text())["status"] == "failed"


def test_a_state_held_after_the_problem_cleared_still_makes_health_not_serving(
    agent_factory, push, tiny_onnx_model, monkeypatch
):
    # the race behind a flaky run: the monitor's probe cleared the write
    # problem between the failed write and the hold; the held state, still
    # unwritable, must bring NOT_SERVING back
    agent = agent_factory(task=TASK)
    sha = push(agent.stub, tiny_onnx_model)
    run_id = _start(agent, _spec(sha))
    assert agent.server.runs.wait(run_id, timeout=30) == "completed"
    real = registry_mod.write_json_atomic

    def full_for_results(path, data):
        if Path(path).name == "result.json":
            raise _enospc(path)
        return real(path, data)

    monkeypatch.setattr(registry_mod, "write_json_atomic", full_for_results)
    reg = agent.server.runs.registry
    rd = registry_mod.RunDir(reg.root / run_id, reg)
    reg.hold(rd, rd.state(), {"status": "completed"})
    assert wait_until(lambda: _health(agent) == NOT_SERVING)
    monkeypatch.undo()
    assert wait_until(lambda: _health(agent) == SERVING)


def test_below_the_free_space_reserve_runs_are_refused_and_health_is_not_serving(
    agent_factory, push, tiny_onnx_model
):
    agent = agent_factory(task=TASK, min_free=1 << 60)
    sha = push(agent.stub, tiny_onnx_model)
    with pytest.raises(grpc.RpcError) as ei:
        _start(agent, _spec(sha))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--min-free" in ei.value.details() and "\n" not in ei.value.details()
    assert _health(agent) == NOT_SERVING
    assert list((agent.state_dir / "runs").iterdir()) == []


@pytest.fixture
def small_fs(tmp_path):
    """A 64 MiB tmpfs (the issue's repro); skipped where mounting is not allowed."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip() or res.returncode}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path: Path) -> None:
    """Write until the filesystem is full."""
    chunk = b"\0" * (256 << 10)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with open(path, "ab", buffering=0) as f:  # the last pages
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_a_real_full_disk_mid_run_fails_that_run_and_the_agent_recovers_when_space_returns(
    small_fs, agent_factory, push, tiny_onnx_model
):
    agent = agent_factory(state_dir=small_fs / "state", min_free=4 << 20)
    sha = push(agent.stub, tiny_onnx_model)
    spec = {"kind": "bench", "model_sha256": sha, "model_name": "tiny", "warmup_s": 0.1, "duration_s": 4.0,
            "min_iterations": 10, "placement": False, "telemetry_rate_hz": 20.0}  # fmt: skip
    run_id = _start(agent, spec)
    assert _running(agent, run_id)
    filler = small_fs / "filler"
    _fill(filler)
    assert agent.server.runs.wait(run_id, timeout=60) == "failed"
    rec, result = _get(agent, run_id)
    assert "no space left on device" in result["error"].lower() and "\n" not in result["error"]
    assert wait_until(lambda: _health(agent) == NOT_SERVING)
    with pytest.raises(grpc.RpcError) as ei:
        _start(agent, spec)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    filler.unlink()
    assert wait_until(lambda: _health(agent) == SERVING)
    state = json.loads((agent.state_dir / "runs" / run_id / "state.json").read_text())
    assert state["status"] == "failed"
    nxt = _start(agent, {**spec, "duration_s": 0.3})
    assert agent.server.runs.wait(nxt, timeout=60) == "completed"


# -- defect 2: a hung worker, a run that never ends ------------------------------------
def test_cancel_kills_a_worker_stuck_in_a_native_call_after_the_grace_period(
    agent_factory, push, tiny_onnx_model
):
    agent = agent_factory(task=TASK)  # the default grace: 3 s
    sha = push(agent.stub, tiny_onnx_model)
    run_id = _start(agent, _spec(sha, "hang"))
    pid = _running(agent, run_id)
    assert wait_until(lambda: _hanging(agent, run_id))  # inside the native call
    t0 = time.monotonic()
    rec = agent.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30)
    assert rec.status == "cancelled" and time.monotonic() - t0 < 9
    result = json.loads(rec.result_json)
    assert result["error"] == "cancelled; killed after the 3 s cancel grace period"
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}") or "zombie" in _proc_state(pid), timeout=5)
    nxt = _start(agent, _spec(sha))
    assert agent.server.runs.wait(nxt, timeout=30) == "completed"


def _hanging(agent, run_id: str) -> bool:
    return '"phase":"hang"' in (agent.state_dir / "runs" / run_id / "journal.jsonl").read_text()


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_a_worker_stuck_in_a_native_call_times_out(agent_factory, push, tiny_onnx_model):
    # 6 s: the worker must reach its native call (spawn, imports) before the limit
    agent = agent_factory(task=TASK, max_run_s=6.0, cancel_grace_s=1.0)
    sha = push(agent.stub, tiny_onnx_model)
    run_id = _start(agent, _spec(sha, "hang"))
    t0 = time.monotonic()
    assert agent.server.runs.wait(run_id, timeout=30) == "failed"
    assert time.monotonic() - t0 < 15
    rec, result = _get(agent, run_id)
    assert result["error"] == "timed out after 6 s; killed after the 1 s grace period"
    assert result["error_code"] == "timeout"


def test_a_bench_that_never_reaches_min_iterations_times_out_and_the_next_run_starts(
    agent_factory, push, tiny_onnx_model
):
    agent = agent_factory(max_run_s=4.0)
    sha = push(agent.stub, tiny_onnx_model)
    spec = {"kind": "bench", "model_sha256": sha, "model_name": "tiny", "warmup_s": 0.1, "duration_s": 0.2,
            "min_iterations": 10**9, "placement": False, "telemetry": False}  # fmt: skip
    run_id = _start(agent, spec)
    nxt = _start(agent, {**spec, "min_iterations": 10})
    assert agent.server.runs.wait(run_id, timeout=60) == "failed"
    rec, result = _get(agent, run_id)
    assert result["error"] == "timed out after 4 s" and result["error_code"] == "timeout"
    assert agent.server.runs.wait(nxt, timeout=60) == "completed"
    # a spec that asks for more than the cap is refused before it exists
    with pytest.raises(grpc.RpcError) as ei:
        _start(agent, {**spec, "duration_s": 60.0})
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--max-run-s" in ei.value.details()


# -- defect 4: a flood of queued runs ----------------------------------------------
def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_queued_runs_hold_no_file_and_the_queue_is_bounded(agent_factory, push, tiny_onnx_model):
    n = 24
    agent = agent_factory(task=TASK, max_queued=n, cancel_grace_s=0.5)
    sha = push(agent.stub, tiny_onnx_model)
    runs = agent.server.runs
    blocker = runs.start(RunSpec.from_dict(_spec(sha, "hang")))
    assert _running(agent, blocker)
    before = _fds()
    queued = [runs.start(RunSpec.from_dict(_spec(sha))) for _ in range(n)]
    grown = _fds() - before
    assert grown <= 3, f"{n} queued runs opened {grown} files"
    with pytest.raises(grpc.RpcError) as ei:
        _start(agent, _spec(sha))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ei.value.details() == (
        f"the run queue is full ({n} runs queued, --max-queued {n}); wait for runs to finish or cancel some"
    )
    assert len(list((agent.state_dir / "runs").iterdir())) == n + 1  # nothing stored for the refused one
    # the queue drains: the blocker is cancelled, most queued runs too, two run
    for run_id in queued[2:]:
        runs.cancel(run_id)
    runs.cancel(blocker)
    assert runs.wait(queued[0], timeout=60) == "completed" and runs.wait(queued[1], timeout=60) == "completed"
    assert {runs.wait(r, timeout=30) for r in queued[2:]} == {"cancelled"}
    _start(agent, _spec(sha))  # room again


def test_serve_takes_the_run_bounds(tmp_path):
    from agent.cli import build_parser

    args = build_parser().parse_args(
        [
            "serve",
            "--min-free",
            "128M",
            "--max-queued",
            "8",
            "--max-run-s",
            "2h",
            "--state-dir",
            str(tmp_path),
        ]
    )
    assert (args.min_free, args.max_queued, args.max_run_s) == (128 << 20, 8, 7200.0)
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.min_free, defaults.max_queued, defaults.max_run_s) == (64 << 20, 64, 86400.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--max-queued", "0"])
