"""Runs on a real agent over loopback gRPC with the real worker (spawned
process, real ONNX Runtime): journaled events, resumable watch, crash
isolation, cancel, the queue, and recovery after the agent is killed."""

from __future__ import annotations

import json
import os
import signal

import grpc
import numpy as np
import pytest
from conftest import wait_until

from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.runs import execution

LONG_S = 60.0  # runs that a test interrupts never get near their end


def _spec(sha: str, **kw) -> str:
    spec = {"kind": "bench", "model_sha256": sha, "model_name": "tiny", "warmup_s": 0.1, "duration_s": 0.5,
            "min_iterations": 10, "placement": False, "telemetry_rate_hz": 20.0}  # fmt: skip
    spec.update(kw)
    return json.dumps(spec)


def _start(stub, sha: str, **kw) -> str:
    return stub.StartRun(pb.StartRunRequest(spec_json=_spec(sha, **kw))).run_id


def _watch(stub, run_id: str, after: int = 0, until=None) -> list[pb.RunEvent]:
    """Events from after+1; stops at the stream end or when ``until(event)`` holds."""
    out = []
    for ev in stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_seq=after), timeout=120):
        out.append(ev)
        if until is not None and until(ev):
            break
    return out


def _measuring(ev: pb.RunEvent) -> bool:
    return ev.kind == "progress" or (ev.kind == "phase" and json.loads(ev.payload_json)["phase"] == "measure")


def _record(stub, run_id: str) -> tuple[pb.RunRecord, dict]:
    rec = stub.GetRun(pb.GetRunRequest(run_id=run_id))
    return rec, json.loads(rec.result_json) if rec.result_json else {}


def _state(state_dir, run_id: str) -> dict:
    return json.loads((state_dir / "runs" / run_id / "state.json").read_text())


def _wait_pid_gone(pid: int, timeout: float = 20.0) -> bool:
    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child (in-process agent): reap it
            return os.waitpid(pid, os.WNOHANG)[0] == pid
        except ChildProcessError:
            return False

    return wait_until(gone, timeout, step=0.05)


@pytest.fixture
def model_sha(agent, push, tiny_onnx_model) -> str:
    return push(agent.stub, tiny_onnx_model)


def test_bench_run_journals_gap_free_events_and_writes_the_result(agent, model_sha):
    run_id = _start(agent.stub, model_sha)
    events = _watch(agent.stub, run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = [e.kind for e in events]
    assert kinds[0] == "state" and json.loads(events[0].payload_json) == {"status": "queued"}
    assert kinds[-1] == "result" and json.loads(events[-1].payload_json)["status"] == "completed"
    phases = [json.loads(e.payload_json)["phase"] for e in events if e.kind == "phase"]
    assert phases[:3] == ["load", "warmup", "measure"] and phases[-1] == "done"
    assert all(e.t_ns > 0 for e in events)

    # what was streamed is exactly what is on disk
    run_dir = agent.state_dir / "runs" / run_id
    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert [(j["seq"], j["kind"]) for j in journal] == [(e.seq, e.kind) for e in events]

    rec, result = _record(agent.stub, run_id)
    assert rec.status == "completed" and rec.kind == "bench" and rec.last_seq == len(events)
    assert result["schema"] == "edgebench.result/v1" and result["status"] == "completed"
    assert result["run_id"] == run_id and result["error"] is None
    assert result["model"]["sha256"] == model_sha and result["model"]["format"] == "onnx"
    assert result["iterations"] >= 10 and result["throughput_ips"] > 0
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["agent"]["hostname"]
    assert {"spec.json", "state.json", "journal.jsonl", "result.json", "stderr.log", "iterations.npy"} <= set(
        rec.files
    )
    # per-iteration timestamps come back through FetchRunFile
    req = pb.FetchRunFileRequest(run_id=run_id, name="iterations.npy")
    fetched = agent.state_dir / "fetched.npy"
    fetched.write_bytes(b"".join(c.data for c in agent.stub.FetchRunFile(req)))
    its = np.load(fetched)
    assert its.shape[1] == 3 and int((its[:, 2] == 1).sum()) == result["iterations"]

    # finished runs replay from any seq, each event once
    k = len(events) // 2
    assert [e.seq for e in _watch(agent.stub, run_id, after=k)] == list(range(k + 1, len(events) + 1))
    assert _watch(agent.stub, run_id, after=len(events)) == []
    stats = agent.server.runs.stats()
    # every inference counts, cold and warm-up included: one row each in iterations.npy
    assert stats["runs_in_flight"] == 0 and stats["inferences_total"] == its.shape[0]
    assert its.shape[0] == result["iterations"] + result["warmup_iterations"] + 1


def test_watch_resumes_mid_run_with_every_event_exactly_once(agent, model_sha):
    run_id = _start(agent.stub, model_sha, duration_s=2.0)
    first = _watch(agent.stub, run_id, until=lambda e: e.kind == "progress")
    assert first[-1].kind == "progress"
    stats = agent.server.runs.stats()
    assert stats["runs_in_flight"] == 1 and stats["current_throughput_ips"] > 0
    # the watcher went away and comes back with the last seq it saw
    rest = _watch(agent.stub, run_id, after=first[-1].seq)
    seqs = [e.seq for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    assert rest[-1].kind == "result"
    assert _record(agent.stub, run_id)[0].status == "completed"


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT])
def test_worker_killed_by_a_signal_fails_the_run_and_the_agent_keeps_serving(agent, model_sha, sig):
    run_id = _start(agent.stub, model_sha, duration_s=LONG_S)
    _watch(agent.stub, run_id, until=_measuring)
    pid = _state(agent.state_dir, run_id)["pid"]
    # leave a last word in the worker's stderr.log, as a crashing delegate would
    with open(agent.state_dir / "runs" / run_id / "stderr.log", "a") as f:
        f.write("vx_delegate: something went badly wrong\n")
    os.kill(pid, sig)
    events = _watch(agent.stub, run_id)
    assert events[-1].kind == "result"
    rec, result = _record(agent.stub, run_id)
    name = signal.Signals(sig).name
    assert rec.status == "failed" and result["status"] == "failed"
    assert result["error"].startswith(f"worker died: {name} (signal {int(sig)})")
    assert "vx_delegate: something went badly wrong" in result["error"] and "\n" not in result["error"]
    assert result["error_code"] == "run_failed"
    # the agent is fine: another run completes
    ok = _start(agent.stub, model_sha, duration_s=0.2)
    _watch(agent.stub, ok)
    assert _record(agent.stub, ok)[0].status == "completed"


def test_cancel_terminates_the_worker(agent, model_sha):
    run_id = _start(agent.stub, model_sha, duration_s=LONG_S)
    _watch(agent.stub, run_id, until=_measuring)
    pid = _state(agent.state_dir, run_id)["pid"]
    rec = agent.stub.CancelRun(pb.CancelRunRequest(run_id=run_id))
    assert rec.status == "cancelled"
    assert json.loads(rec.result_json)["status"] == "cancelled"
    assert _wait_pid_gone(pid)
    assert _watch(agent.stub, run_id)[-1].kind == "result"


def test_runs_queue_one_at_a_time_and_list_newest_first(agent, model_sha):
    a = _start(agent.stub, model_sha, duration_s=0.3)
    b = _start(agent.stub, model_sha, duration_s=0.3)
    c = _start(agent.stub, model_sha, duration_s=LONG_S)
    # c is cancelled while still queued: it never starts a worker
    rec_c = agent.stub.CancelRun(pb.CancelRunRequest(run_id=c))
    assert rec_c.status == "cancelled"
    for r in (a, b):
        _watch(agent.stub, r)
    sa, sb = _state(agent.state_dir, a), _state(agent.state_dir, b)
    assert sa["status"] == sb["status"] == "completed"
    assert sb["started_unix"] >= sa["ended_unix"]  # b waited for a
    assert _state(agent.state_dir, c)["started_unix"] is None
    listed = [r.run_id for r in agent.stub.ListRuns(pb.ListRunsRequest()).runs]
    assert listed == [c, b, a]
    assert [r.run_id for r in agent.stub.ListRuns(pb.ListRunsRequest(limit=1)).runs] == [c]


def test_a_file_that_is_not_a_model_fails_as_bad_input(agent, push, tmp_path):
    junk = tmp_path / "notes.onnx"
    junk.write_text("these are not the weights you are looking for\n")
    run_id = _start(agent.stub, push(agent.stub, junk))
    _watch(agent.stub, run_id)
    rec, result = _record(agent.stub, run_id)
    assert rec.status == "failed" and result["error_code"] == "bad_input"
    assert "not a model file" in result["error"] and "\n" not in result["error"]


def test_bad_run_requests_are_rejected_and_nothing_is_stored(agent, model_sha):
    cases = [
        ("{not json", "not JSON"),
        (_spec("0" * 64), "is not in the agent's store"),
        (_spec(model_sha, kind="dance"), "unknown run kind"),
        (_spec(model_sha, frobnicate=1), "unknown run spec field"),
    ]
    for spec_json, message in cases:
        with pytest.raises(grpc.RpcError) as ei:
            agent.stub.StartRun(pb.StartRunRequest(spec_json=spec_json))
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in ei.value.details()
    assert list((agent.state_dir / "runs").iterdir()) == []
    for call in (
        lambda: agent.stub.GetRun(pb.GetRunRequest(run_id="20260101T000000000Z-abcdef")),
        lambda: list(agent.stub.WatchRun(pb.WatchRunRequest(run_id="../../etc"))),
        lambda: agent.stub.CancelRun(pb.CancelRunRequest(run_id="nope")),
    ):
        with pytest.raises(grpc.RpcError) as ei:
            call()
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND


def test_fetch_run_file_refuses_paths(agent, model_sha):
    run_id = _start(agent.stub, model_sha, duration_s=0.1, min_iterations=1)
    _watch(agent.stub, run_id)
    for name in ("../spec.json", "/etc/passwd", "..", "a/b"):
        with pytest.raises(grpc.RpcError) as ei:
            list(agent.stub.FetchRunFile(pb.FetchRunFileRequest(run_id=run_id, name=name)))
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as ei:
        list(agent.stub.FetchRunFile(pb.FetchRunFileRequest(run_id=run_id, name="power.bin")))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    spec = b"".join(
        c.data for c in agent.stub.FetchRunFile(pb.FetchRunFileRequest(run_id=run_id, name="spec.json"))
    )
    assert json.loads(spec)["model_sha256"] == model_sha


def test_agent_killed_mid_run_shows_interrupted_after_restart(tmp_path, agent_process, push, tiny_onnx_model):
    state = tmp_path / "state"
    ap = agent_process(state_dir=state)
    sha = push(ap.stub, tiny_onnx_model)
    run_id = _start(ap.stub, sha, duration_s=LONG_S)
    seen = _watch(ap.stub, run_id, until=lambda e: e.kind == "progress")
    worker = _state(state, run_id)["pid"]
    ap.kill(signal.SIGKILL)
    # the worker dies with its agent instead of loading the board on its own
    assert _wait_pid_gone(worker)
    assert _state(state, run_id)["status"] == "running"  # as the dead agent left it

    ap2 = agent_process(state_dir=state)
    rec, result = _record(ap2.stub, run_id)
    assert rec.status == "interrupted" and result["status"] == "interrupted"
    assert "interrupted" in result["error"] and result["partial"] is True
    assert result["iterations"] > 0 and result["last_phase"] == "measure"
    replay = _watch(ap2.stub, run_id)
    # everything the controller saw before the crash was on disk
    assert [(e.seq, e.kind, e.payload_json) for e in replay[: len(seen)]] == [
        (e.seq, e.kind, e.payload_json) for e in seen
    ]
    assert [e.seq for e in replay] == list(range(1, len(replay) + 1))
    assert [r.run_id for r in ap2.stub.ListRuns(pb.ListRunsRequest()).runs] == [run_id]
    # and the restarted agent runs new work
    nxt = _start(ap2.stub, sha, duration_s=0.2)
    _watch(ap2.stub, nxt)
    assert _record(ap2.stub, nxt)[0].status == "completed"
    assert [r.run_id for r in ap2.stub.ListRuns(pb.ListRunsRequest()).runs] == [nxt, run_id]
    assert ap2.stop() == 0


def test_sigterm_stops_gracefully_and_marks_the_run_interrupted(
    tmp_path, agent_process, push, tiny_onnx_model
):
    ap = agent_process(state_dir=tmp_path / "state")
    sha = push(ap.stub, tiny_onnx_model)
    run_id = _start(ap.stub, sha, duration_s=LONG_S)
    _watch(ap.stub, run_id, until=_measuring)
    worker = _state(ap.state_dir, run_id)["pid"]
    assert ap.stop() == 0
    assert _wait_pid_gone(worker)
    st = _state(ap.state_dir, run_id)
    assert st["status"] == "interrupted"
    result = json.loads((ap.state_dir / "runs" / run_id / "result.json").read_text())
    assert result["status"] == "interrupted"


def test_an_agent_side_failure_fails_only_that_run(agent, model_sha, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("assembly exploded")

    monkeypatch.setattr(execution, "assemble", broken)
    run_id = _start(agent.stub, model_sha, duration_s=0.1, min_iterations=1)
    assert _watch(agent.stub, run_id)[-1].kind == "result"
    rec, result = _record(agent.stub, run_id)
    assert rec.status == "failed" and result["error"] == "agent error: RuntimeError: assembly exploded"
    assert agent.server.runs.stats()["runs_in_flight"] == 0
    monkeypatch.undo()
    ok = _start(agent.stub, model_sha, duration_s=0.1, min_iterations=1)
    _watch(agent.stub, ok)
    assert _record(agent.stub, ok)[0].status == "completed"


def test_a_watcher_that_disconnects_does_not_stop_the_run(agent, model_sha):
    run_id = _start(agent.stub, model_sha, duration_s=1.0)
    call = agent.stub.WatchRun(pb.WatchRunRequest(run_id=run_id))
    assert next(call).seq == 1
    call.cancel()
    assert agent.server.runs.wait(run_id, timeout=60) == "completed"
    assert _record(agent.stub, run_id)[1]["iterations"] >= 10


@pytest.mark.parametrize("end", ["sigsegv", "cancel"])
def test_a_run_cut_short_keeps_the_latency_of_the_rows_it_wrote(agent, model_sha, end):
    run_id = _start(agent.stub, model_sha, duration_s=LONG_S, warmup_s=0.0)
    _watch(agent.stub, run_id, until=_measuring)
    rows = agent.state_dir / "runs" / run_id / "iterations.npy"

    def measured() -> np.ndarray:
        it = np.load(rows)
        return it[it[:, 2] == 1]

    wait_until(lambda: measured().shape[0] >= 20, 20, step=0.05)
    if end == "sigsegv":
        os.kill(_state(agent.state_dir, run_id)["pid"], signal.SIGSEGV)
    else:
        agent.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=15)
    _watch(agent.stub, run_id)
    rec, result = _record(agent.stub, run_id)
    assert rec.status == ("failed" if end == "sigsegv" else "cancelled")
    m = measured()
    lat = result["latency_ms"]
    assert lat is not None and result["iterations"] > 0
    # from the rows on disk when the worker never sent its own figures (a
    # crashed one cannot; a cancelled one may have)
    if end == "sigsegv" or "latency_from" in result:
        assert result["measured_rows"] == m.shape[0]
        assert lat["max"] == pytest.approx((m[:, 1] - m[:, 0]).max() / 1e6)
        assert lat["p50"] <= lat["p99"] <= lat["max"]
