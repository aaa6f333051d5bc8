"""The agent under a flood of callers while it benchmarks (issue 13's load figure).

20 client threads call GetInfo, ListRuns, a dedup push (StatArtifact, then an
Upload header the agent answers "present" without a byte) and a short
WatchRun, for the length of a bench, while the bench runs. Reported: every
call answered or not (a RESOURCE_EXHAUSTED from the guard's per-method bound
is an answer, given at once; a deadline or UNAVAILABLE is not), GetInfo's
p99, the agent's own CPU per 1,000 calls, and
the bench's throughput against the same bench undisturbed, measured in the
same run. The bench's worker is pinned to one core and the agent's server
and the clients to the other, as the issue asks (psutil affinity; the
worker's pid is in the run's state.json). Target: throughput ratio >= 0.97.

    .venv/bin/python bench/bench_rpc_load.py [--seconds 30] [--clients 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.rpc.edgebench.v1 import agent_pb2 as pb  # noqa: E402
from agent.rpc.edgebench.v1 import agent_pb2_grpc as pb_grpc  # noqa: E402

AGENT = Path(sys.executable).parent / "edgebench-agent"
SERVER_CPU, WORKER_CPU = 0, 1


def start_agent(state: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [str(AGENT), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    line = proc.stdout.readline().decode()
    if not line.startswith("listening on "):
        raise SystemExit(f"agent did not start: {line!r}")
    psutil.Process(proc.pid).cpu_affinity([SERVER_CPU])
    return proc, line.split()[-1]


def push(stub: pb_grpc.AgentStub, path: Path) -> str:
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()

    def chunks():  # noqa: ANN202
        yield pb.UploadChunk(header=pb.UploadHeader(sha256=sha, size_bytes=len(data), name=path.name))
        yield pb.UploadChunk(data=data)

    stub.Upload(chunks(), timeout=60)
    return sha


def bench(stub: pb_grpc.AgentStub, state: Path, sha: str, seconds: float) -> dict:
    spec = {"kind": "bench", "model_sha256": sha, "model_name": "cnn.onnx", "threads": 1, "warmup_s": 1.0,
            "duration_s": seconds, "min_iterations": 10, "placement": False, "telemetry": False}  # fmt: skip
    run_id = stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec)), timeout=30).run_id
    # pin the worker as soon as it exists: it runs on the other core from the server and clients
    state_json = state / "runs" / run_id / "state.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            pid = json.loads(state_json.read_text()).get("pid")
        except (OSError, ValueError):
            pid = None
        if pid:
            psutil.Process(pid).cpu_affinity([WORKER_CPU])
            break
        time.sleep(0.01)
    return {"run_id": run_id}


def wait(stub: pb_grpc.AgentStub, run_id: str) -> dict:
    for _ in range(6000):
        rec = stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=30)
        if rec.status in ("completed", "failed", "cancelled", "interrupted") and rec.result_json:
            return json.loads(rec.result_json)
        time.sleep(0.1)
    raise SystemExit("the bench did not end")


def client(
    stub: pb_grpc.AgentStub, sha: str, size: int, run_id: str, stop: threading.Event, out: dict
) -> None:
    lat: dict[str, list[float]] = {"info": [], "list": [], "push": [], "watch": []}
    codes: dict[str, int] = {}
    i = 0
    while not stop.is_set():
        kind = ("info", "list", "push", "watch")[i % 4]
        i += 1
        t0 = time.perf_counter()
        try:
            if kind == "info":
                stub.GetInfo(pb.GetInfoRequest(), timeout=10)
            elif kind == "list":
                stub.ListRuns(pb.ListRunsRequest(limit=20), timeout=10)
            elif kind == "push":
                stub.StatArtifact(pb.StatArtifactRequest(sha256=sha), timeout=10)
                header = pb.UploadChunk(header=pb.UploadHeader(sha256=sha, size_bytes=size, name="cnn.onnx"))
                stub.Upload(iter([header]), timeout=10)
            else:
                call = stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=10)
                next(call)  # one event, then leave: the stream must end cleanly
                call.cancel()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:  # our own cancel of the watch
                codes[exc.code().name] = codes.get(exc.code().name, 0) + 1
        lat[kind].append((time.perf_counter() - t0) * 1e3)
    out["lat"], out["codes"] = lat, codes


def nearest_rank(xs: list[float], pct: float) -> float:
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(round(pct / 100 * len(s) + 0.5)) - 1))] if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=20)
    args = ap.parse_args()
    from controller.models.onnx_cnn import tiny_cnn

    psutil.Process().cpu_affinity([SERVER_CPU])  # the clients share the server's core
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        model = tiny_cnn(Path(tmp) / "cnn.onnx")
        proc, address = start_agent(state)
        try:
            stub = pb_grpc.AgentStub(grpc.insecure_channel(address))
            sha = push(stub, model)
            # undisturbed first, then the same bench under the flood
            quiet = wait(stub, bench(stub, state, sha, args.seconds)["run_id"])
            agent = psutil.Process(proc.pid)
            run = bench(stub, state, sha, args.seconds)
            stop = threading.Event()
            outs = [{} for _ in range(args.clients)]
            cpu0 = agent.cpu_times()
            size = model.stat().st_size
            threads = []
            for o in outs:
                own = pb_grpc.AgentStub(grpc.insecure_channel(address))  # a channel each, as separate callers
                threads.append(threading.Thread(target=client, args=(own, sha, size, run["run_id"], stop, o)))
            for t in threads:
                t.start()
            loaded = wait(stub, run["run_id"])
            stop.set()
            for t in threads:
                t.join(30)
            cpu1 = agent.cpu_times()
        finally:
            proc.terminate()
            proc.wait(30)
    lat = {
        k: [x for o in outs for x in o.get("lat", {}).get(k, [])] for k in ("info", "list", "push", "watch")
    }
    calls = sum(len(v) for v in lat.values())
    codes: dict[str, int] = {}
    for o in outs:
        for k, v in o.get("codes", {}).items():
            codes[k] = codes.get(k, 0) + v
    # RESOURCE_EXHAUSTED is an answer: the guard's per-method bound refusing at once
    # (agent/server/guard.py); an unanswered call is a deadline or an unavailable agent
    errors = sum(v for k, v in codes.items() if k != "RESOURCE_EXHAUSTED")
    agent_cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    ratio = loaded["throughput_ips"] / quiet["throughput_ips"]
    out = {
        "clients": args.clients,
        "seconds": args.seconds,
        "calls": calls,
        "refused_at_once": codes.get("RESOURCE_EXHAUSTED", 0),
        "status_codes": codes,
        "unanswered": errors,
        "every_call_answered": errors == 0,
        "p99_ms": {k: round(nearest_rank(v, 99), 2) for k, v in lat.items()},
        "p50_ms": {k: round(statistics.median(v), 2) for k, v in lat.items() if v},
        "agent_cpu_s_per_1000_calls": round(agent_cpu_s / calls * 1000, 3) if calls else None,
        "bench_ips_undisturbed": quiet["throughput_ips"],
        "bench_ips_under_load": loaded["throughput_ips"],
        "ratio": round(ratio, 4),
        "target": 0.97,
        "pass": ratio >= 0.97 and errors == 0,
        "pinning": {"worker_cpu": WORKER_CPU, "server_and_clients_cpu": SERVER_CPU},
    }
    print(json.dumps(out, indent=1))
    res = ROOT / "bench" / "results" / "rpc_load.json"
    res.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {res}")


if __name__ == "__main__":
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs two cores: the worker on one, the server and clients on the other")
    main()
