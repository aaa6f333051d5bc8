"""A long run history: listing and startup with 20,000 runs (issue 13 defect 10).

Figures (written to bench/results/history.json):

- list_ms: ``ListRuns(limit=20)`` (what ``edgebench runs --agent`` asks for)
  against a running ``edgebench-agent serve``: median and max of repeated
  calls, and ``list_cold_ms``, the first call after the run files were
  dropped from the page cache. Target: < 200 ms.
- startup_s: ``edgebench-agent serve`` from exec to ``listening on`` with the
  index present and the run files dropped from the page cache (Python start
  included); ``startup_inproc_s``: ``AgentServer.start()`` alone. Target: < 2 s.
- index_build_s: the first start after an upgrade (no index yet): the index
  built from the run directories, once.
- scan_all_s: reading every state.json, what ListRuns and startup did before
  the index (for comparison).
- page_all_s / max_reply_mib: paging through the whole history 1,000 runs a
  reply; the largest reply (the old single reply reached gRPC's 64 MiB near
  80,000 runs).

"Dropped from the page cache" is posix_fadvise(DONTNEED) on each file of the
state dir: our files only, without root or a global drop_caches.

Run: .venv/bin/python bench/bench_history.py [--runs 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from agent.rpc.edgebench.v1 import agent_pb2 as pb  # noqa: E402
from agent.rpc.edgebench.v1 import agent_pb2_grpc as pb_grpc  # noqa: E402
from agent.runs.registry import new_run_id  # noqa: E402


def make_history(state: Path, n: int) -> None:
    """``n`` finished runs as an agent leaves them: spec, state, journal, result."""
    runs = state / "runs"
    runs.mkdir(parents=True)
    t0 = time.time() - n * 60.0
    for i in range(n):
        t = t0 + i * 60.0
        run_id = new_run_id(t)
        d = runs / run_id
        d.mkdir()
        spec = {"kind": "bench", "model_sha256": "a" * 64, "model_name": f"m{i % 17}", "duration_s": 10.0}
        (d / "spec.json").write_text(json.dumps(spec, indent=1))
        state_doc = {"status": "completed", "created_unix": t, "started_unix": t + 0.1,
                     "ended_unix": t + 11.0, "error": None, "error_code": None, "pid": None}  # fmt: skip
        (d / "state.json").write_text(json.dumps(state_doc, indent=1))
        events = [{"seq": k + 1, "t_ns": k, "kind": "progress", "payload": {"n": k}} for k in range(8)]
        (d / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        result = {"schema": "edgebench.result/v1", "run_id": run_id, "status": "completed", "iterations": 10}
        (d / "result.json").write_text(json.dumps(result, indent=1))


def evict(state: Path) -> None:
    """Drop the state dir's files from the page cache (ours only)."""
    for dirpath, _, names in os.walk(state):
        for name in names:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def scan_all(state: Path) -> float:
    t = time.perf_counter()
    for d in (state / "runs").iterdir():
        try:
            json.loads((d / "state.json").read_text())
        except (OSError, ValueError):
            pass
    return time.perf_counter() - t


def serve(state: Path) -> tuple[subprocess.Popen, str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "agent.cli", "serve", "--listen", "127.0.0.1:0", "--state-dir", str(state)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if line.startswith("listening on "):
            return proc, line.split()[-1], time.perf_counter() - t
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit("the agent did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def list_ms(stub: pb_grpc.AgentStub) -> float:
    t = time.perf_counter()
    resp = stub.ListRuns(pb.ListRunsRequest(limit=20), timeout=60)
    assert len(resp.runs) == 20
    return (time.perf_counter() - t) * 1e3


def page_all(stub: pb_grpc.AgentStub, n: int) -> tuple[float, float]:
    t = time.perf_counter()
    token, seen, biggest = "", 0, 0
    while True:
        resp = stub.ListRuns(pb.ListRunsRequest(limit=0, page_token=token), timeout=120)
        seen += len(resp.runs)
        biggest = max(biggest, resp.ByteSize())
        token = resp.next_page_token
        if not token:
            break
    assert seen == n, (seen, n)
    return time.perf_counter() - t, biggest / (1 << 20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "history.json"))
    args = ap.parse_args()

    from agent.server.app import AgentServer

    with tempfile.TemporaryDirectory(prefix="edgebench-history-") as tmp:
        state = Path(tmp) / "state"
        t = time.perf_counter()
        make_history(state, args.runs)
        made_s = time.perf_counter() - t
        evict(state)
        scan_s = scan_all(state)

        # the first start of an agent with this history: the index is built once
        t = time.perf_counter()
        server = AgentServer(state)
        server.start()
        build_s = time.perf_counter() - t
        server.stop(0)

        evict(state)
        t = time.perf_counter()
        server = AgentServer(state)
        server.start()
        inproc_s = time.perf_counter() - t
        server.stop(0)

        evict(state)
        proc, address, startup_s = serve(state)
        try:
            with grpc.insecure_channel(address) as ch:
                stub = pb_grpc.AgentStub(ch)
                evict(state)
                cold = list_ms(stub)
                warm = [list_ms(stub) for _ in range(args.calls)]
                all_s, biggest = page_all(stub, args.runs)
        finally:
            stop(proc)

    res = {
        "runs": args.runs,
        "list_ms": {"p50": round(statistics.median(warm), 2), "max": round(max(warm), 2)},
        "list_cold_ms": round(cold, 2),
        "startup_s": round(startup_s, 3),
        "startup_inproc_s": round(inproc_s, 3),
        "index_build_s": round(build_s, 3),
        "scan_all_s": round(scan_s, 3),
        "page_all_s": round(all_s, 3),
        "max_reply_mib": round(biggest, 3),
        "history_written_s": round(made_s, 1),
        "targets": {"list_ms": 200, "startup_s": 2.0},
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
    }
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
