"""AgentClient against real agents on loopback: dedup, sha mismatch, an
interrupted upload resumed from the committed offset, and a watch that
resumes after the agent restarts."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from conftest import spawn_agent, wait_until

from agent.errors import BadInput, EdgebenchError
from agent.spec import RunSpec
from controller.client import AgentClient


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))  # the sha256 cache lives there


def test_sha_cache_skips_rehash_until_the_file_changes(tmp_path, monkeypatch):
    from controller import client

    p = tmp_path / "big.bin"
    p.write_bytes(os.urandom(2 << 20))
    first = client.sha256_file(p)
    calls = []
    monkeypatch.setattr(client, "_hash", lambda path: calls.append(path) or "0" * 64)
    assert client.sha256_file(p) == first and calls == []
    p.write_bytes(os.urandom(2 << 20))  # new size/mtime: hashed again
    assert client.sha256_file(p) == "0" * 64 and len(calls) == 1


@pytest.fixture
def blob(tmp_path):
    p = tmp_path / "blob.bin"
    p.write_bytes(os.urandom(5 << 20))
    return p


def test_repush_moves_no_bytes(agent, blob, monkeypatch):
    c = AgentClient(agent.address)
    sha = c.push(blob)
    assert sha == hashlib.sha256(blob.read_bytes()).hexdigest()
    assert c.stat(sha).present
    sent = []
    real = c.stub.Upload
    monkeypatch.setattr(c.stub, "Upload", lambda it, **kw: sent.append(1) or real(it, **kw))
    assert c.push(blob) == sha and sent == []


def test_upload_with_wrong_sha_is_bad_input_and_not_stored(agent, blob):
    c = AgentClient(agent.address)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(BadInput, match="sha256|mismatch|digest"):
        c.push(blob, sha=wrong)
    assert not c.stat(wrong).present


def test_interrupted_upload_resumes_from_committed_offset(agent, blob):
    c = AgentClient(agent.address)
    with pytest.raises(EdgebenchError):
        c.push(blob, max_bytes=3 << 20)  # the stream ends short: the agent commits what it got
    sha = hashlib.sha256(blob.read_bytes()).hexdigest()
    st = c.stat(sha)
    assert not st.present and 0 < st.committed_offset <= 3 << 20
    assert c.push(blob) == sha
    assert c.last_push_offset == st.committed_offset
    assert c.stat(sha).present and c.stat(sha).size_bytes == blob.stat().st_size


def test_unreachable_and_missing_file_are_bad_input(tmp_path):
    c = AgentClient("127.0.0.1:1", timeout=2)
    with pytest.raises(BadInput, match="unreachable"):
        c.info()
    with pytest.raises(BadInput, match="not found"):
        c.push(tmp_path / "missing.onnx")


def test_watch_resumes_after_seq_and_across_agent_restart(tmp_path, tiny_onnx_model):
    ap = spawn_agent(tmp_path / "st")
    c = AgentClient(ap.address)
    sha = c.push(tiny_onnx_model)
    spec = RunSpec(
        kind="bench", model_sha256=sha, model_name="m.onnx", warmup_s=0, duration_s=0.3, min_iterations=5
    )
    rid = c.start_run(spec)
    evs = list(c.watch(rid))
    seqs = [e["seq"] for e in evs]
    assert seqs == list(range(1, len(seqs) + 1)) and evs[-1]["kind"] == "result"
    assert [e["seq"] for e in c.watch(rid, after_seq=seqs[2])] == seqs[3:]
    assert c.get_run(rid)["status"] == "completed"
    # a long run: stop the agent mid-watch and start it again on the same port
    spec.duration_s = 30.0
    rid2 = c.start_run(spec)
    got: list[dict] = []
    t = threading.Thread(target=lambda: got.extend(c.watch(rid2, reconnect_s=30)))
    t.start()
    assert wait_until(lambda: any(e["kind"] == "progress" for e in got), timeout=60, step=0.05)
    ap.stop()  # graceful stop: the run ends interrupted
    ap2 = spawn_agent(tmp_path / "st", "--listen", ap.address)
    try:
        t.join(60)
        assert not t.is_alive()
        seqs = [e["seq"] for e in got]
        assert seqs == list(range(1, len(seqs) + 1))  # nothing lost, nothing twice
        assert c.get_run(rid2)["status"] == "interrupted"
    finally:
        ap2.stop()
        c.close()


def test_embedded_agents_side_by_side_share_nothing_but_work(tmp_path):
    from controller.embedded import EmbeddedAgent

    with EmbeddedAgent() as a, EmbeddedAgent() as b:
        assert a.state_dir == tmp_path / "home" / "agent" and b.state_dir != a.state_dir
        for emb in (a, b):
            with AgentClient(emb.address) as c:
                assert c.info()["schema"] == "edgebench.info/v1"
        scratch = b.state_dir
    assert not scratch.exists()
    with (
        pytest.raises(BadInput, match="in use"),
        EmbeddedAgent(tmp_path / "x"),
        EmbeddedAgent(tmp_path / "x"),
    ):
        pass


def test_two_embedded_runs_at_once_take_turns_on_the_board(tmp_path, tiny_onnx_model, capsys):
    """Two controllers without --agent each start an embedded agent; their runs
    measured at once on the same CPU. The second now waits for the first, says so,
    and the measured spans do not overlap."""
    from controller.session import Session

    results: list[dict] = []
    started = threading.Event()

    def one(first: bool) -> None:
        with Session.open() as s:
            spec = RunSpec(kind="bench", model_sha256=s.push(tiny_onnx_model), model_name="tiny.onnx",
                           warmup_s=0.0, duration_s=1.0, min_iterations=5, telemetry=False)  # fmt: skip
            if not first:
                assert started.wait(30)
            results.append(s.run(spec, quiet=False, on_start=lambda _id: started.set() if first else None))

    threads = [threading.Thread(target=one, args=(i == 0,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2 and all(r["status"] == "completed" for r in results)
    a, b = sorted(results, key=lambda r: r["started_unix"])
    assert a["ended_unix"] <= b["started_unix"], (a["ended_unix"], b["started_unix"])
    assert "waiting for another edgebench run on this machine" in capsys.readouterr().err


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_losing_the_agent_mid_run_names_the_run_and_how_to_fetch_it(tmp_path, tiny_onnx_model, sig):
    """An agent stopped (SIGTERM) marks the run interrupted while its watchers are
    still connected, and the controller says so; one killed outright leaves the
    controller with a run id and a fetch command, exit 1 (it said 'unreachable',
    exit 2, with neither)."""
    import signal

    from agent.errors import RunFailed
    from controller.session import Session

    ap = spawn_agent(tmp_path / "state")
    try:
        with Session.open(ap.address) as s:
            spec = RunSpec(kind="bench", model_sha256=s.push(tiny_onnx_model), model_name="tiny.onnx",
                           warmup_s=0.0, duration_s=60.0, min_iterations=5, telemetry=False)  # fmt: skip
            run_id = s.start(spec)
            assert wait_until(lambda: s.record(run_id)["status"] == "running", 30)
            # the signal, without waiting for the agent to go: the watch is
            # open while a SIGTERMed agent ends its run
            ap.proc.send_signal(getattr(signal, sig))
            if sig == "SIGTERM":
                try:  # the result itself, or (the agent gone before GetRun) how it ended
                    doc = s.follow(run_id, reconnect_s=2.0)
                    assert doc["status"] == "interrupted" and "the agent stopped" in doc["error"]
                except RunFailed as exc:
                    assert f"run {run_id} ended interrupted" in str(exc)
                    assert f"edgebench fetch {run_id} --agent {ap.address}" in str(exc)
                return
            with pytest.raises(RunFailed) as got:
                s.follow(run_id, reconnect_s=2.0)
        said = str(got.value)
        assert f"edgebench fetch {run_id} --agent {ap.address}" in said
        assert f"lost the agent while run {run_id} was running" in said
    finally:
        ap.proc.kill()
        ap.proc.wait(30)
