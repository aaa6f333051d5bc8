"""The journal and the registry on disk: gap-free seqs across reopen, a torn
last line after a crash, sortable run ids, and recovery of in-flight runs."""

from __future__ import annotations

import json
import signal
import threading

import pytest

from agent.rundir import stderr_tail
from agent.runs.journal import Journal, read_events
from agent.runs.registry import Registry, new_run_id, valid_run_id
from agent.runs.result import partial_result
from agent.runs.worker import died_message as worker_died_message


def test_seq_is_gap_free_and_continues_after_reopen(tmp_path):
    p = tmp_path / "journal.jsonl"
    j = Journal(p)
    for i in range(3):
        j.append("progress", {"iterations": i})
    j.close()
    j2 = Journal(p)
    assert j2.last_seq == 3
    ev = j2.append("state", {"status": "running"})
    assert ev["seq"] == 4
    assert [e["seq"] for e in read_events(p)] == [1, 2, 3, 4]
    assert [e["seq"] for e in read_events(p, after_seq=2)] == [3, 4]


def test_a_torn_last_line_is_dropped_and_appends_stay_parseable(tmp_path):
    p = tmp_path / "journal.jsonl"
    j = Journal(p)
    j.append("phase", {"phase": "load"})
    j.append("phase", {"phase": "warmup"})
    j.close()
    with open(p, "a") as f:
        f.write('{"seq": 3, "t_ns": 5, "kind": "progr')  # the agent died mid-write
    assert [e["seq"] for e in read_events(p)] == [1, 2]
    j2 = Journal(p)
    assert j2.append("phase", {"phase": "measure"})["seq"] == 3
    assert [json.loads(line)["seq"] for line in p.read_text().splitlines()] == [1, 2, 3]


def test_waiters_see_events_only_after_they_are_on_disk(tmp_path):
    p = tmp_path / "journal.jsonl"
    j = Journal(p)
    on_disk_when_seen = []

    def watcher():
        evs = j.wait_after(0, timeout=10)
        on_disk_when_seen.append([e["seq"] for e in read_events(p)] == [e["seq"] for e in evs])

    t = threading.Thread(target=watcher)
    t.start()
    j.append("state", {"status": "running"})
    t.join(10)
    assert on_disk_when_seen == [True]
    j.close()
    assert j.wait_after(1, timeout=5) == []  # closed: returns at once


def test_memory_holds_only_the_tail_and_a_late_watcher_still_gets_every_event_once(tmp_path):
    p = tmp_path / "journal.jsonl"
    j = Journal(p, memory_events=16)
    for i in range(100):
        j.append("progress", {"iterations": i})
    assert len(j._events) == 16  # a long soak costs the agent no more memory than a short one
    seen: list[int] = []
    seq = 0
    while True:  # a controller re-attaching from seq 0, batch by batch as watch() does
        batch = j.wait_after(seq, timeout=0.1)
        if not batch:
            break
        seen += [e["seq"] for e in batch]
        seq = batch[-1]["seq"]
    assert seen == list(range(1, 101))
    assert [e["payload"]["iterations"] for e in j.events_after(97)] == [97, 98, 99]
    j.close()
    again = Journal(p, memory_events=16)  # reopened after a restart: the tail again
    assert len(again._events) == 16 and again.last_seq == 100
    assert [e["seq"] for e in again.events_after(10)][:3] == [11, 12, 13]


def test_a_late_watcher_seeks_to_a_mark_instead_of_rescanning(tmp_path, monkeypatch):
    from agent.runs import journal

    monkeypatch.setattr(journal, "MARK_EVERY", 8)
    p = tmp_path / "journal.jsonl"
    j = Journal(p, memory_events=16)
    for i in range(100):
        j.append("progress", {"iterations": i})
    assert [m[0] for m in j._marks] == list(range(1, 100, 8))
    # spoil the first line in place: a read that started at byte 0 would stop there
    data = p.read_bytes()
    first = data.index(b"\n")
    p.write_bytes(b"x" * first + data[first:])
    assert [e["seq"] for e in j.wait_after(50, timeout=0)] == list(range(51, 67))
    j.close()


def test_run_ids_sort_by_time_and_reject_paths():
    a = new_run_id(1_700_000_000.001)
    b = new_run_id(1_700_000_000.002)
    c = new_run_id(1_700_000_001.0)
    assert a < b < c and all(valid_run_id(x) for x in (a, b, c))
    assert a[:19] == "20231114T221320001Z"
    for bad in ("", "..", "../x", a + "/..", "x" * 26):
        assert not valid_run_id(bad)


def test_recover_marks_in_flight_runs_interrupted_from_their_journal(tmp_path):
    reg = Registry(tmp_path)
    done = reg.create({"kind": "bench", "model_sha256": "a" * 64})
    done.update_state(status="completed")
    soak = reg.create({"kind": "soak", "model_sha256": "b" * 64, "soak": {"window_s": 5.0}})
    soak.update_state(status="running", started_unix=1.0, pid=12345)
    j = Journal(soak.journal_path)
    j.append("state", {"status": "running"})
    j.append("phase", {"phase": "measure"})
    for k in range(3):
        j.append("window", {"t_s": 5.0 * k, "throughput_ips": 100.0 - k, "p50_ms": 1.0, "p99_ms": 2.0})
    j.append("progress", {"iterations": 1000, "elapsed_s": 10.0, "throughput_ips": 99.0})
    j.close()
    queued = reg.create({"kind": "bench", "model_sha256": "c" * 64})

    assert sorted(Registry(tmp_path).recover(partial_result)) == sorted([soak.run_id, queued.run_id])
    assert done.state()["status"] == "completed" and done.result() is None
    st = soak.state()
    assert st["status"] == "interrupted" and st["pid"] is None and "running" in st["error"]
    r = soak.result()
    assert r["status"] == "interrupted" and r["partial"] is True
    assert r["iterations"] == 1000 and r["last_phase"] == "measure"
    soak = r["soak"]
    assert [w["throughput_ips"] for w in soak["windows"]] == [100.0, 99.0, 98.0]
    # three full windows: the documented verdict set ("interrupted": it ended early;
    # what its windows show so far), and cold/sustained from the windows it has
    assert soak["window_s"] == 5.0 and soak["verdict"] == "interrupted" and soak["partial"] is True
    assert soak["verdict_so_far"] == "stable"
    assert soak["cold_throughput_ips"] == pytest.approx(100.0, abs=1.0)
    assert soak["sustained_throughput_ips"] == pytest.approx(98.5, abs=1.0)
    assert 0.95 < soak["sustained_ratio"] < 1.0
    assert queued.result()["status"] == "interrupted"
    # a second start has nothing left to recover
    assert Registry(tmp_path).recover(partial_result) == []


def test_worker_died_message_is_one_line_with_signal_and_stderr_tail(tmp_path):
    log = tmp_path / "stderr.log"
    log.write_text("loading\n\nW tidl: layer 7 unsupported\nfatal: out of\n   buffers  \n")
    msg = worker_died_message(-signal.SIGSEGV, log)
    assert msg.startswith("worker died: SIGSEGV (signal 11); stderr: ")
    assert msg.endswith("W tidl: layer 7 unsupported | fatal: out of | buffers")
    assert "\n" not in msg
    assert "out of memory" in worker_died_message(-signal.SIGKILL, tmp_path / "missing.log")
    assert worker_died_message(3, tmp_path / "missing.log") == "worker died: exit code 3 without a result"
    assert stderr_tail(tmp_path / "missing.log") == ""


def test_last_seq_comes_from_the_journal_tail(tmp_path):
    reg = Registry(tmp_path)
    rd = reg.create({"kind": "bench", "model_sha256": "a" * 64})
    assert rd.last_seq() == 0
    j = Journal(rd.journal_path)
    for i in range(2000):
        j.append("progress", {"iterations": i, "pad": "x" * 64})
    j.close()
    with open(rd.journal_path, "a") as f:
        f.write('{"seq": 2001, "kin')
    assert rd.last_seq() == 2000


def test_recover_keeps_a_completed_result_written_before_the_crash(tmp_path):
    # issue 13 defect 5: the agent died after result.json, before state.json
    reg = Registry(tmp_path)
    rd = reg.create({"kind": "bench", "model_sha256": "a" * 64})
    rd.update_state(status="running", started_unix=1.0, pid=4242)
    j = Journal(rd.journal_path)
    j.append("state", {"status": "running"})
    j.append("progress", {"iterations": 10, "elapsed_s": 0.1, "throughput_ips": 100.0})
    j.close()
    complete = {"schema": "edgebench.result/v1", "run_id": rd.run_id, "status": "completed", "error": None,
                "error_code": None, "ended_unix": 2.0, "iterations": 1234}  # fmt: skip
    rd.write_result(complete)

    assert Registry(tmp_path).recover(partial_result) == [rd.run_id]
    assert rd.result() == complete  # not replaced by a partial "interrupted" one
    st = rd.state()
    assert st["status"] == "completed" and st["error"] is None
    assert st["ended_unix"] == 2.0 and st["pid"] is None
    # a result.json that is not final (or not a result) does not win
    other = reg.create({"kind": "bench", "model_sha256": "b" * 64})
    other.update_state(status="running")
    other.write_result({"schema": "edgebench.result/v1", "run_id": "someone-else", "status": "completed"})
    Registry(tmp_path).recover(partial_result)
    assert other.state()["status"] == "interrupted" and other.result()["status"] == "interrupted"


_BAD_LINES = [
    '{"seq": 3, "t_ns": 3, "payload": {"phase": "measure"}}',  # no kind
    "[1, 2, 3]",  # not an object
    '{"seq": 4, "t_ns": 4, "kind": "progress", "payload": [1, 2]}',  # payload not an object
    '{"seq": "5", "t_ns": 5, "kind": "phase", "payload": {"phase": "x"}}',  # seq not a number
    '{"seq": null, "t_ns": 5, "kind": "phase", "payload": {}}',
    '{"seq": 1, "t_ns": 5, "kind": "phase", "payload": {"phase": "again"}}',  # seq goes back
    '{"seq": 6, "t_ns": "x", "kind": 7, "payload": {}}',  # kind not a string
    "not json at all",
]


def test_recovery_skips_complete_but_malformed_journal_records_and_logs_them(tmp_path, caplog):
    # issue 13 defect 8: one bad record crash-looped the agent at start
    reg = Registry(tmp_path)
    rd = reg.create({"kind": "bench", "model_sha256": "a" * 64})
    rd.update_state(status="running")
    good = [
        {"seq": 1, "t_ns": 1, "kind": "state", "payload": {"status": "running"}},
        {"seq": 2, "t_ns": 2, "kind": "phase", "payload": {"phase": "warmup"}},
        {"seq": 7, "t_ns": 7, "kind": "progress", "payload": {"iterations": 77, "elapsed_s": 1.0}},
        {"seq": 8, "t_ns": 8, "kind": "phase", "payload": {"phase": "measure"}},
    ]
    lines = [json.dumps(good[0]), json.dumps(good[1]), *_BAD_LINES, json.dumps(good[2]), json.dumps(good[3])]
    rd.journal_path.write_text("\n".join(lines) + "\n")

    with caplog.at_level("WARNING", logger="edgebench.agent.runs"):
        assert Registry(tmp_path).recover(partial_result) == [rd.run_id]
    r = rd.result()
    assert r["status"] == "interrupted" and r["journal_events"] == 4
    assert r["last_phase"] == "measure" and r["iterations"] == 77
    assert [e["seq"] for e in read_events(rd.journal_path)] == [1, 2, 7, 8]
    assert any("journal" in m and "skipped" in m for m in caplog.messages)
    # the journal reopens past them and keeps counting from the last good seq
    j = Journal(rd.journal_path)
    assert j.last_seq == 8 and j.append("log", {"message": "after"})["seq"] == 9
    j.close()
    assert [e["seq"] for e in read_events(rd.journal_path)] == [1, 2, 7, 8, 9]


def test_a_recovered_partial_run_has_the_latency_of_the_rows_on_disk(tmp_path):
    import numpy as np

    reg = Registry(tmp_path)
    rd = reg.create({"kind": "bench", "model_sha256": "a" * 64})
    rd.update_state(status="running", started_unix=1.0, pid=12345)
    j = Journal(rd.journal_path)
    j.append("progress", {"iterations": 5, "elapsed_s": 1.0, "throughput_ips": 5.0})
    j.close()
    # two warm-up rows, then five measured ones of 1..5 ms (the agent was killed mid-run)
    starts = np.arange(7, dtype=np.int64) * 10_000_000
    ends = starts + np.array([9, 9, 1, 2, 3, 4, 5], dtype=np.int64) * 1_000_000
    np.save(rd.path / "iterations.npy", np.stack([starts, ends, [0, 0, 1, 1, 1, 1, 1]], axis=1))
    assert Registry(tmp_path).recover(partial_result) == [rd.run_id]
    r = rd.result()
    assert r["status"] == "interrupted" and r["partial"] is True and r["iterations"] == 5
    assert r["measured_rows"] == 5 and r["latency_from"].startswith("iterations.npy")
    lat = r["latency_ms"]
    assert (lat["min"], lat["p50"], lat["max"], lat["mean"]) == (1.0, 3.0, 5.0, 3.0)
