"""Agent cost and artifact push speed, measured side by side in one run.

Figures (written to bench/results/agent.json):

- idle_rss_mib / idle_cpu_pct: a freshly started ``edgebench-agent serve``
  (after one GetInfo, so the fingerprint is cached), sampled over
  IDLE_SECONDS with no run active. Targets: < 80 MiB, < 1 % of a core.
- push_ratio: throughput of pushing a 256 MiB file through the agent's
  Upload RPC (loopback gRPC, sha256 verified on the agent, fsynced, atomically
  renamed into the store) divided by a raw TCP socket copy of the same bytes
  into a file by a separate Python process, measured in the same run. Target:
  report it, aim >= 0.5. The client-side sha256 of the file is timed
  separately (a client can cache it by path/size/mtime).
- repush_ms: pushing the same file again with its sha known: StatArtifact says
  present, no bytes move. Target: < 50 ms.

Run: .venv/bin/python bench/bench_agent.py [--size-mib 256] [--idle-s 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.rpc.edgebench.v1 import agent_pb2 as pb  # noqa: E402
from agent.rpc.edgebench.v1 import agent_pb2_grpc as pb_grpc  # noqa: E402

AGENT = Path(sys.executable).parent / "edgebench-agent"
CHUNK = 1 << 20  # what the upload client sends per message
REPEAT = 3

RECEIVER = r"""
import socket, sys, os
out = sys.argv[1]
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
buf = bytearray(1 << 20); view = memoryview(buf); n = 0
with open(out, "wb") as f:
    while True:
        k = conn.recv_into(buf)
        if not k:
            break
        f.write(view[:k]); n += k
    f.flush(); os.fsync(f.fileno())
conn.sendall(str(n).encode()); conn.close()
"""


def start_agent(state: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [str(AGENT), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(state), "--artifact-quota", "2G"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    line = proc.stdout.readline().decode()
    if not line.startswith("listening on "):
        raise SystemExit(f"agent failed to start: {line!r}")
    return proc, line.split()[-1]


def stub_for(address: str) -> pb_grpc.AgentStub:
    import grpc

    opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    return pb_grpc.AgentStub(grpc.insecure_channel(address, options=opts))


def measure_idle(proc: subprocess.Popen, stub: pb_grpc.AgentStub, seconds: float) -> dict:
    stub.GetInfo(pb.GetInfoRequest())
    time.sleep(1.0)  # let start-up settle
    p = psutil.Process(proc.pid)
    t0 = p.cpu_times()
    w0 = time.monotonic()
    rss_max = 0
    while time.monotonic() - w0 < seconds:
        rss_max = max(rss_max, p.memory_info().rss)
        time.sleep(0.25)
    t1 = p.cpu_times()
    wall = time.monotonic() - w0
    cpu = (t1.user + t1.system) - (t0.user + t0.system)
    return {"idle_rss_mib": rss_max / 2**20, "idle_cpu_pct": 100.0 * cpu / wall, "idle_window_s": wall}


def raw_tcp_copy(src: Path, dst: Path) -> float:
    """Seconds to copy src over loopback TCP into dst (receiver in its own process)."""
    recv = subprocess.Popen([sys.executable, "-c", RECEIVER, str(dst)], stdout=subprocess.PIPE)
    port = int(recv.stdout.readline())
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s, open(src, "rb") as f:
        s.sendfile(f)
        s.shutdown(socket.SHUT_WR)
        got = int(s.recv(64))
    dt = time.perf_counter() - t0
    recv.wait()
    assert got == src.stat().st_size
    return dt


def push(stub: pb_grpc.AgentStub, src: Path, sha: str) -> tuple[float, bool]:
    size = src.stat().st_size
    t0 = time.perf_counter()
    st = stub.StatArtifact(pb.StatArtifactRequest(sha256=sha))
    if st.present:
        return time.perf_counter() - t0, True

    def chunks():
        yield pb.UploadChunk(header=pb.UploadHeader(sha256=sha, size_bytes=size, name=src.name, offset=0))
        with open(src, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                yield pb.UploadChunk(data=block)

    resp = stub.Upload(chunks())
    return time.perf_counter() - t0, resp.deduplicated


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--idle-s", type=float, default=10.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "agent.json"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgebench-bench-") as tmp:
        tmp = Path(tmp)
        src = tmp / "artifact.bin"
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(CHUNK))
        nbytes = src.stat().st_size

        proc, address = start_agent(tmp / "state")
        try:
            stub = stub_for(address)
            idle = measure_idle(proc, stub, args.idle_s)

            t0 = time.perf_counter()
            h = hashlib.sha256()
            with open(src, "rb") as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    h.update(block)
            sha = h.hexdigest()
            client_hash_s = time.perf_counter() - t0

            # interleave baseline and push so both see the same machine load;
            # best of REPEAT each (the machine is shared, noise only slows)
            raw_times, push_times = [], []
            for _ in range(REPEAT):
                raw_times.append(raw_tcp_copy(src, tmp / "raw.bin"))
                os.unlink(tmp / "raw.bin")
                stored = tmp / "state" / "artifacts" / sha[:2] / sha
                if stored.exists():
                    stored.unlink()  # force a full upload again
                dt, dedup = push(stub, src, sha)
                assert not dedup
                push_times.append(dt)
            raw_s, push_s = min(raw_times), min(push_times)
            repush = [push(stub, src, sha) for _ in range(5)]
            assert all(d for _, d in repush)
            repush_ms = min(s for s, _ in repush) * 1e3
            repush_ms_max = max(s for s, _ in repush) * 1e3
        finally:
            proc.terminate()
            proc.wait(30)

    raw_mibs = nbytes / 2**20 / raw_s
    push_mibs = nbytes / 2**20 / push_s
    res = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "size_mib": args.size_mib,
        **{k: round(v, 3) for k, v in idle.items()},
        "raw_tcp_mib_s": round(raw_mibs, 1),
        "push_mib_s": round(push_mibs, 1),
        "push_ratio": round(push_mibs / raw_mibs, 3),
        "client_sha256_s": round(client_hash_s, 3),
        "repush_ms": round(repush_ms, 2),
        "repush_ms_max": round(repush_ms_max, 2),
        "raw_tcp_s_all": [round(x, 3) for x in raw_times],
        "push_s_all": [round(x, 3) for x in push_times],
        "targets": {"idle_rss_mib": "<80", "idle_cpu_pct": "<1", "push_ratio": ">=0.5", "repush_ms": "<50"},
    }
    res["pass"] = {
        "idle_rss": res["idle_rss_mib"] < 80,
        "idle_cpu": res["idle_cpu_pct"] < 1.0,
        "push_ratio": res["push_ratio"] >= 0.5,
        "repush": res["repush_ms"] < 50,
    }
    print(
        f"idle agent: RSS {res['idle_rss_mib']:.1f} MiB (target < 80), "
        f"CPU {res['idle_cpu_pct']:.2f} % of a core (target < 1)"
    )
    print(f"raw TCP copy: {raw_mibs:.0f} MiB/s; agent push (sha256-verified, fsynced): {push_mibs:.0f} MiB/s")
    print(f"push ratio: {res['push_ratio']:.2f} (aim >= 0.5); client sha256: {client_hash_s:.2f} s")
    print(
        f"re-push (known sha, Stat hit): {repush_ms:.1f} ms best, {repush_ms_max:.1f} ms worst (target < 50)"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
