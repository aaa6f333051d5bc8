"""The run index (issue 13 defect 10): a page of runs and the agent's start
read only the runs they need, whatever the history; the index is a cache of
the run directories, rebuilt when lost or corrupt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import pytest

from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.runs import registry as registry_mod
from agent.runs.registry import Registry, new_run_id
from agent.runs.result import partial_result

N_RUNS = 300
BASE_T = 1_700_000_000.0


def make_history(state_dir: Path, n: int, active: dict[int, str] | None = None) -> list[str]:
    """``n`` finished run directories written by hand (as an agent would have
    left them); returns their ids, oldest first. ``active``: index -> status."""
    runs = state_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        t = BASE_T + i * 1.5
        run_id = new_run_id(t)
        d = runs / run_id
        d.mkdir()
        status = (active or {}).get(i, "completed")
        (d / "spec.json").write_text(json.dumps({"kind": "bench", "model_sha256": "a" * 64}))
        (d / "state.json").write_text(json.dumps({"status": status, "created_unix": t}))
        first = {"seq": 1, "t_ns": 1, "kind": "state", "payload": {}}
        (d / "journal.jsonl").write_text(json.dumps(first) + "\n")
        ids.append(run_id)
    return ids


@pytest.fixture
def state_reads(monkeypatch):
    """The run ids whose state.json was read, in order."""
    seen: list[str] = []
    real = registry_mod._read_json

    def counting(path: Path):
        if Path(path).name == "state.json":
            seen.append(Path(path).parent.name)
        return real(path)

    monkeypatch.setattr(registry_mod, "_read_json", counting)
    return seen


def _page(stub, limit: int, token: str = "") -> pb.ListRunsResponse:
    return stub.ListRuns(pb.ListRunsRequest(limit=limit, page_token=token))


def test_a_page_of_runs_reads_only_that_page(tmp_path, agent_factory, state_reads):
    ids = make_history(tmp_path / "state", N_RUNS)
    agent = agent_factory(state_dir=tmp_path / "state")
    state_reads.clear()
    first = agent.stub.ListRuns(pb.ListRunsRequest(limit=20))
    assert [r.run_id for r in first.runs] == ids[::-1][:20]
    assert len(set(state_reads)) <= 20 and set(state_reads) <= set(ids[-20:])
    assert first.runs[0].status == "completed" and first.runs[0].last_seq == 1

    # paging: every run once, newest first, and an end
    got, token = [r.run_id for r in first.runs], first.next_page_token
    while token:
        state_reads.clear()
        page = _page(agent.stub, 64, token)
        assert len(set(state_reads)) <= 64
        got += [r.run_id for r in page.runs]
        token = page.next_page_token
    assert got == ids[::-1]
    # limit 0 is a capped page, not the whole history in one reply
    assert len(_page(agent.stub, 0).runs) == N_RUNS
    with pytest.raises(grpc.RpcError) as ei:
        _page(agent.stub, 5, "not-a-token")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_startup_reads_only_the_runs_the_index_says_are_active(tmp_path, state_reads):
    state = tmp_path / "state"
    ids = make_history(state, N_RUNS, active={17: "running", 200: "queued"})
    first = Registry(state)  # no index yet: built from the directories once
    assert sorted(first.recover(partial_result)) == sorted([ids[17], ids[200]])
    first.close()
    state_reads.clear()
    again = Registry(state)
    assert again.recover(partial_result) == [] and state_reads == []
    # a run left running by a crash is the one whose files are read
    rd = again.get(ids[5])
    rd.update_state(status="running")
    again.close()
    state_reads.clear()
    assert Registry(state).recover(partial_result) == [ids[5]]
    assert set(state_reads) == {ids[5]}


@pytest.mark.parametrize("damage", ["deleted", "corrupt", "truncated"])
def test_a_lost_or_corrupt_index_is_rebuilt_with_the_same_list(tmp_path, damage):
    state = tmp_path / "state"
    ids = make_history(state, N_RUNS)
    reg = Registry(state)
    reg.get(ids[3]).update_state(status="failed")
    before = [rd.run_id for rd in reg.list()]
    assert before == ids[::-1]
    reg.close()
    index = state / "runs-index.sqlite"
    for extra in ("-wal", "-shm"):
        Path(str(index) + extra).unlink(missing_ok=True)
    if damage == "deleted":
        index.unlink()
    elif damage == "corrupt":
        index.write_bytes(b"this is not a database" * 100)
    else:
        index.write_bytes(index.read_bytes()[:1500])
    rebuilt = Registry(state)
    assert [rd.run_id for rd in rebuilt.list()] == before
    assert rebuilt.get(ids[3]).state()["status"] == "failed"
    assert [rd.run_id for rd in rebuilt.page(10)[0]] == before[:10]


def test_the_index_follows_directories_changed_behind_its_back(tmp_path):
    state = tmp_path / "state"
    ids = make_history(state, 50)
    Registry(state).close()
    shutil.rmtree(state / "runs" / ids[10])
    (state / "runs" / new_run_id(BASE_T + 1e6)).mkdir()  # a create cut short: no spec.json
    newer = make_history(tmp_path / "other", 1)[0]
    shutil.copytree(tmp_path / "other" / "runs" / newer, state / "runs" / newer)
    reg = Registry(state)
    listed = [rd.run_id for rd in reg.list()]
    assert ids[10] not in listed and len(listed) == 50
    assert set(listed) == (set(ids) - {ids[10]}) | {newer}
    # the half-made directory is gone, not listed
    assert len(list((state / "runs").iterdir())) == 50
