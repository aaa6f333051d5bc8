"""Issue 13 defect 7: abandoned uploads expire, the store can be listed and
emptied (`edgebench artifacts`, `edgebench rm`), and old runs go by the
retention policy, never a run in flight."""

from __future__ import annotations

import json
import os
import time

import grpc
import pytest

from agent import rundir
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.runs.registry import new_run_id, write_json_atomic
from agent.store.artifacts import ArtifactStore
from controller.cli import main as edgebench
from tests.conftest import upload_chunks, wait_until

SHA_A = "a" * 64


def quick_task(spec, run_dir, send) -> None:
    """A worker task that ends at once: a finished run in milliseconds."""
    send({"type": "phase", "phase": "measure"})


def sleep_task(spec, run_dir, send) -> None:
    """A worker task that idles until cancelled."""
    send({"type": "phase", "phase": "measure"})
    time.sleep(60)  # the behaviour: a run still running, not a wait


def _partial(store: ArtifactStore, sha: str, data: bytes, size: int, age_s: float = 0.0) -> None:
    up = store.begin(sha, size, "abandoned.bin", 0)
    up.write(data)
    up.close()  # the stream broke: the part stays for a resume
    if age_s:
        t = time.time() - age_s
        for p in (store.part_path(sha), store.sidecar_path(sha)):
            os.utime(p, (t, t))


def _code(fn) -> tuple[grpc.StatusCode, str]:
    try:
        fn()
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def _start(stub, sha: str) -> str:
    spec = {"kind": "bench", "model_sha256": sha, "telemetry": False, "placement": False}
    return stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec)), timeout=10).run_id


def _status(stub, run_id: str) -> str:
    return stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=5).status


# -- upload expiry -------------------------------------------------------------
def test_an_abandoned_upload_expires_and_frees_its_quota(tmp_path):
    store = ArtifactStore(tmp_path, quota_bytes=1000)
    _partial(store, SHA_A, b"x" * 600, 900, age_s=3600)
    _partial(store, "b" * 64, b"y" * 100, 100, age_s=10)
    assert store.used_bytes() == 700
    # the abandoned upload holds the quota: a 500-byte artifact does not fit
    with pytest.raises(Exception, match="quota"):
        store.begin("c" * 64, 500, "new.bin", 0)
    assert store.expire_uploads(max_age_s=600) == [SHA_A]
    assert not store.part_path(SHA_A).exists() and not store.sidecar_path(SHA_A).exists()
    assert store.part_path("b" * 64).exists()  # younger than the expiry: kept for a resume
    assert store.used_bytes() == 100
    store.begin("c" * 64, 500, "new.bin", 0).close()


def test_an_upload_in_progress_never_expires(tmp_path):
    store = ArtifactStore(tmp_path)
    up = store.begin(SHA_A, 10, "live.bin", 0)
    up.write(b"12345")
    up._join()  # the bytes are on disk
    t = time.time() - 7200
    os.utime(store.part_path(SHA_A), (t, t))
    assert store.expire_uploads(max_age_s=60) == []
    assert store.part_path(SHA_A).exists()
    up.close()


def test_a_sweep_does_bounded_work_and_the_next_takes_up_after_it(tmp_path):
    store = ArtifactStore(tmp_path)
    shas = [f"{i:x}" * 64 for i in range(1, 10)]
    for sha in shas:
        _partial(store, sha[:64], b"z", 4, age_s=3600)
    seen = []
    for _ in range(5):
        got = store.expire_uploads(max_age_s=60, max_scan=4)
        assert len(got) <= 2  # 4 entries examined: 2 uploads of part + sidecar each
        seen += got
    assert sorted(seen) == sorted(s[:64] for s in shas)
    assert os.listdir(store.uploads) == []


def test_the_agent_sweeps_at_start_and_while_running(agent_factory, tmp_path):
    state = tmp_path / "st"
    _partial(ArtifactStore(state), SHA_A, b"x" * 10, 20, age_s=3600)
    a = agent_factory(state_dir=state, upload_expiry_s=1.0)
    assert a.stub.StatArtifact(pb.StatArtifactRequest(sha256=SHA_A)).committed_offset == 0  # swept at start
    # an upload broken off now is resumable at first, then expires
    sha = "d" * 64
    code, _ = _code(lambda: a.stub.Upload(upload_chunks(iter([b"abc"]), sha, 10, "m.bin"), timeout=5))
    assert code == grpc.StatusCode.ABORTED
    assert a.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha)).committed_offset == 3
    listing = a.stub.ListArtifacts(pb.ListArtifactsRequest())
    assert [(x.sha256, x.partial, x.size_bytes, x.declared_bytes) for x in listing.artifacts] == [
        (sha, True, 3, 10)
    ]
    assert wait_until(
        lambda: a.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha)).committed_offset == 0, 10
    )
    assert not a.stub.ListArtifacts(pb.ListArtifactsRequest()).artifacts


# -- listing and deleting artifacts ----------------------------------------------
def test_list_shows_name_size_requirements_and_last_use(agent_factory, push, tmp_path):
    a = agent_factory(task=f"{__name__}:quick_task")
    model = tmp_path / "det.onnx"
    model.write_bytes(b"m" * 1234)
    sha = push(a.stub, model)
    a.stub.Upload(iter([pb.UploadChunk(header=pb.UploadHeader(sha256=sha, size_bytes=1234, name="det.onnx",
                                                               requires=["sm=87"]))]))  # fmt: skip
    (rec,) = a.stub.ListArtifacts(pb.ListArtifactsRequest()).artifacts
    assert (rec.sha256, rec.name, rec.size_bytes, list(rec.requires), rec.partial) == (
        sha, "det.onnx", 1234, ["sm=87"], False
    )  # fmt: skip
    assert abs(rec.stored_unix - time.time()) < 60
    # a run start is a use: another artifact (this one's sm=87 refuses to start here)
    other = tmp_path / "cls.onnx"
    other.write_bytes(b"c" * 10)
    sha2 = push(a.stub, other)
    by_sha = {r.sha256: r for r in a.stub.ListArtifacts(pb.ListArtifactsRequest()).artifacts}
    used_before = by_sha[sha2].last_used_unix
    assert used_before == by_sha[sha2].stored_unix
    # a later use has a later stamp: let the clock pass the stored one (a poll, not a guess)
    assert wait_until(lambda: time.time() > used_before, timeout=5, step=0.005)
    _start(a.stub, sha2)
    by_sha = {r.sha256: r for r in a.stub.ListArtifacts(pb.ListArtifactsRequest()).artifacts}
    assert by_sha[sha2].last_used_unix > used_before
    assert by_sha[sha].last_used_unix == rec.last_used_unix


def test_delete_is_refused_while_a_run_uses_the_artifact(agent_factory, push, tmp_path):
    a = agent_factory(task=f"{__name__}:sleep_task", artifact_quota=10_000)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"q" * 4000)
    sha = push(a.stub, model)
    run_id = _start(a.stub, sha)
    code, details = _code(lambda: a.stub.DeleteArtifact(pb.DeleteArtifactRequest(sha256=sha)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "queued or running" in details
    assert a.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha)).present
    a.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=15)
    assert wait_until(lambda: not a.server.runs.in_flight())
    resp = a.stub.DeleteArtifact(pb.DeleteArtifactRequest(sha256=sha))
    assert (resp.freed_bytes, resp.partial) == (4000, False)
    st = a.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha))
    assert not st.present and st.quota_bytes == 10_000
    code, _ = _code(lambda: a.stub.DeleteArtifact(pb.DeleteArtifactRequest(sha256=sha)))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _code(lambda: a.stub.DeleteArtifact(pb.DeleteArtifactRequest(sha256="../x")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_removes_a_partial_upload(agent):
    code, _ = _code(lambda: agent.stub.Upload(upload_chunks(iter([b"abc"]), SHA_A, 10, "m.bin"), timeout=5))
    assert code == grpc.StatusCode.ABORTED
    resp = agent.stub.DeleteArtifact(pb.DeleteArtifactRequest(sha256=SHA_A))
    assert (resp.freed_bytes, resp.partial) == (3, True)
    assert agent.stub.StatArtifact(pb.StatArtifactRequest(sha256=SHA_A)).committed_offset == 0


# -- deleting runs and retention ----------------------------------------------------
def test_delete_run_refuses_a_run_in_flight_and_deletes_a_finished_one(agent_factory, push, tmp_path):
    a = agent_factory(task=f"{__name__}:sleep_task")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"m")
    sha = push(a.stub, model)
    running = _start(a.stub, sha)
    queued = _start(a.stub, sha)
    for run_id in (running, queued):
        code, details = _code(lambda r=run_id: a.stub.DeleteRun(pb.DeleteRunRequest(run_id=r)))
        assert code == grpc.StatusCode.FAILED_PRECONDITION, details
        assert (a.state_dir / "runs" / run_id / rundir.SPEC).is_file()
    a.stub.CancelRun(pb.CancelRunRequest(run_id=queued), timeout=15)
    assert _status(a.stub, queued) == "cancelled"  # ended at once, not when dispatched
    a.stub.CancelRun(pb.CancelRunRequest(run_id=running), timeout=15)
    assert wait_until(lambda: not a.server.runs.in_flight())
    assert a.stub.DeleteRun(pb.DeleteRunRequest(run_id=queued)).freed_bytes > 0
    assert not (a.state_dir / "runs" / queued).exists()
    assert not list((a.state_dir / "runs").glob(".deleted-*"))
    code, _ = _code(lambda: a.stub.GetRun(pb.GetRunRequest(run_id=queued)))
    assert code == grpc.StatusCode.NOT_FOUND
    assert _status(a.stub, running) == "cancelled"  # untouched by the other's deletion


def test_cancelling_a_queued_run_ends_it_at_once_behind_a_running_one(agent_factory, push, tmp_path):
    a = agent_factory(task=f"{__name__}:sleep_task")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"m")
    sha = push(a.stub, model)
    running, queued = _start(a.stub, sha), _start(a.stub, sha)
    assert wait_until(lambda: _status(a.stub, running) == "running")
    t0 = time.monotonic()
    # it used to wait for the run ahead: ~10 s, then "Deadline Exceeded" at the client
    rec = a.stub.CancelRun(pb.CancelRunRequest(run_id=queued), timeout=5)
    assert time.monotonic() - t0 < 3
    assert rec.status == "cancelled" and json.loads(rec.result_json)["status"] == "cancelled"
    assert json.loads(rec.result_json)["error"] == "cancelled before it started"
    assert _status(a.stub, running) == "running"  # the other one is untouched
    # its place in the queue is free: a new run can queue behind the running one
    third = _start(a.stub, sha)
    assert _status(a.stub, third) == "queued"
    for r in (third, running):
        a.stub.CancelRun(pb.CancelRunRequest(run_id=r), timeout=15)
    assert wait_until(lambda: not a.server.runs.in_flight())
    assert _status(a.stub, queued) == "cancelled" and _status(a.stub, third) == "cancelled"


def test_keep_runs_deletes_the_oldest_finished_runs_after_each_run(agent_factory, push, tmp_path):
    a = agent_factory(task=f"{__name__}:quick_task", keep_runs=2)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"m")
    sha = push(a.stub, model)
    ids = []
    for _ in range(4):
        ids.append(_start(a.stub, sha))
        assert wait_until(lambda: _status(a.stub, ids[-1]) not in ("queued", "running"))
    left = lambda: sorted(p.name for p in (a.state_dir / "runs").iterdir())  # noqa: E731
    assert wait_until(lambda: left() == ids[-2:], 15), (left(), ids, [_status(a.stub, i) for i in ids[-2:]])


def test_retention_never_deletes_a_run_in_flight(agent_factory, push, tmp_path):
    a = agent_factory(task=f"{__name__}:sleep_task", keep_runs=1)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"m")
    sha = push(a.stub, model)
    running, queued = _start(a.stub, sha), _start(a.stub, sha)
    assert a.server.housekeeper.retain() == []
    assert (a.state_dir / "runs" / running).is_dir() and (a.state_dir / "runs" / queued).is_dir()
    a.stub.CancelRun(pb.CancelRunRequest(run_id=queued), timeout=15)
    a.stub.CancelRun(pb.CancelRunRequest(run_id=running), timeout=15)
    assert wait_until(lambda: not a.server.runs.in_flight())
    # two finished, keep 1: the older goes
    assert wait_until(lambda: [p.name for p in (a.state_dir / "runs").iterdir()] == [queued], 15)


def _old_run(state, days_ago: float, status: str = "completed") -> str:
    t = time.time() - days_ago * 86400
    run_id = new_run_id(t)
    d = state / "runs" / run_id
    d.mkdir(parents=True)
    write_json_atomic(d / rundir.SPEC, {"kind": "bench"})
    write_json_atomic(d / rundir.STATE, {"status": status, "created_unix": t, "ended_unix": t + 60})
    return run_id


def test_keep_days_applies_at_start(agent_factory, tmp_path):
    state = tmp_path / "st"
    old = _old_run(state, 40)
    recent = _old_run(state, 2)
    (state / "runs" / ".deleted-x").mkdir()  # what a crash mid-delete leaves
    a = agent_factory(state_dir=state, keep_days=30)
    names = sorted(p.name for p in (a.state_dir / "runs").iterdir())
    assert names == [recent] and old != recent


# -- the controller commands ---------------------------------------------------
def test_edgebench_artifacts_and_rm(agent_factory, push, tmp_path, capsys):
    a = agent_factory(task=f"{__name__}:quick_task")
    model = tmp_path / "det.onnx"
    model.write_bytes(b"m" * 2048)
    sha = push(a.stub, model)
    run_id = _start(a.stub, sha)
    assert wait_until(lambda: _status(a.stub, run_id) not in ("queued", "running"))
    assert wait_until(lambda: not a.server.runs.in_flight())
    assert edgebench(["artifacts", "--agent", a.address]) == 0
    out = capsys.readouterr().out
    assert sha[:12] in out and "det.onnx" in out and "2.0 KiB" in out
    assert edgebench(["artifacts", "--agent", a.address, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["artifacts"][0]["sha256"] == sha
    # a typo deletes nothing, even next to a good target
    assert edgebench(["rm", "--agent", a.address, "det.onnx", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nosuch" in err
    assert a.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha)).present
    assert edgebench(["rm", "--agent", a.address, sha[:8], run_id]) == 0
    out = capsys.readouterr().out
    assert f"deleted artifact {sha[:12]}" in out and f"deleted run {run_id}" in out
    assert not a.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha)).present
    assert not (a.state_dir / "runs" / run_id).exists()
    assert edgebench(["rm", "--agent", a.address, run_id]) == 2
    assert "no run" in capsys.readouterr().err


def test_edgebench_rm_refuses_an_artifact_in_use_in_one_line(agent_factory, push, tmp_path, capsys):
    a = agent_factory(task=f"{__name__}:sleep_task")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"m")
    sha = push(a.stub, model)
    run_id = _start(a.stub, sha)
    assert edgebench(["rm", "--agent", a.address, sha]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "queued or running" in err and "Traceback" not in err
    assert edgebench(["rm", "--agent", a.address, run_id]) == 2
    assert "cancel it or wait" in capsys.readouterr().err
    assert a.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha)).present


def test_stop_wakes_the_housekeeper_instead_of_waiting_out_its_poll(agent):
    from agent.service.housekeeping import POLL_S

    hk = agent.server.housekeeper
    assert hk.alive() and hk._thread.is_alive()
    t0 = time.monotonic()
    hk.stop()
    # the loop sleeps on run_ended for up to POLL_S: stop must not wait that out
    # (it did: every agent stop took 2 s, most of the suite's teardown time)
    assert not hk._thread.is_alive() and time.monotonic() - t0 < POLL_S / 2
