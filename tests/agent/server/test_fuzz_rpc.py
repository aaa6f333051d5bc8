"""Fuzz every RPC of a live agent (a real ``edgebench-agent serve`` on
loopback) with hypothesis-built protobuf messages: at least 10,000 calls,
drawn as 1,000 hypothesis examples of 10 calls each (a sequence also probes
what one call leaves behind for the next; hypothesis' own cost per example,
~4.6 ms on 2 cores, was most of this test's time at one call per example).

Each call must answer within its deadline with a deliberate status (never
UNKNOWN or INTERNAL, the marks of an unhandled exception) and a one-line
message; afterwards the agent still serves, wrote nothing outside its state
dir, and its RSS is back within 10% of where it started (issue 13).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import grpc
import psutil
import pytest
from conftest import push_file, wait_until
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from agent.rpc.edgebench.v1 import agent_pb2 as pb

CASES = 10_000  # calls
BATCH = 10  # calls per hypothesis example: CASES // BATCH = 1,000 examples
DEADLINE_S = 5.0  # a loopback call answers in milliseconds: this is a hang
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNAVAILABLE,
}

# values that probe paths, parsers and limits, mixed with random text
NASTY = [
    "", ".", "..", "../../etc/passwd", "/etc/passwd", "a/b", "a\\b", "\x00", "spec.json", "journal.jsonl",
    "result.json", "../spec.json", "%2e%2e%2f", "~", "a" * 300, "\u202e", "CON", "NaN", "1e400",
    "20260101T000000000Z-abcdef", "0" * 64, "a" * 64, "A" * 64, "sm=87", "tensorrt>=10.3", "l4t=36.4",
]  # fmt: skip
text = st.one_of(st.sampled_from(NASTY), st.text(max_size=40))
u64 = st.one_of(st.sampled_from([0, 1, 2**31, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
SPEC_KEYS = [
    "schema", "kind", "model_sha256", "model_name", "runtime", "providers", "provider_options", "delegate",
    "delegate_options", "threads", "graph_optimization_level", "input_shapes", "inputs_sha256",
    "reference_sha256", "accelerator", "env", "warmup_s", "duration_s", "min_iterations", "placement",
    "fail_on_fallback", "strict_placement", "max_cpu_ops", "max_partitions", "telemetry",
    "telemetry_rate_hz", "meter", "transient_a", "soak", "validation", "labels",
]  # fmt: skip
# specs close to valid, so that every field's check is reached; the model is
# never in the store, so no run starts
spec_dict = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["bench", "soak", "validate", "placement", "x"]),
        "model_sha256": st.just("b" * 64),
    },
    optional={k: json_value for k in SPEC_KEYS if k not in ("kind", "model_sha256")},
)
spec_json = st.one_of(
    spec_dict.map(json.dumps),
    json_value.map(json.dumps),
    text,
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)


def _calls(run_id: str, model_sha: str):
    """Strategies of (name, call(stub, health, timeout) -> None)."""
    run_ids = st.one_of(st.just(run_id), text)
    shas = st.one_of(st.just(model_sha), text)

    def unary(name, builder):
        return builder.map(lambda req: (name, lambda s, h, t: getattr(s, name)(req, timeout=t)))

    def stream(name, builder):
        return builder.map(lambda req: (name, lambda s, h, t: list(getattr(s, name)(req, timeout=t))))

    header = st.builds(
        pb.UploadHeader, sha256=shas, size_bytes=st.one_of(st.integers(0, 64), u64), name=text, offset=u64,
        requires=st.lists(text, max_size=3),
    )  # fmt: skip
    chunk = st.one_of(
        st.builds(pb.UploadChunk, data=st.binary(max_size=64)), st.builds(pb.UploadChunk, header=header)
    )
    uploads = st.lists(chunk, max_size=4).map(
        lambda chunks: ("Upload", lambda s, h, t: s.Upload(iter(chunks), timeout=t))
    )
    return st.one_of(
        unary("GetInfo", st.just(pb.GetInfoRequest())),
        unary("StatArtifact", st.builds(pb.StatArtifactRequest, sha256=shas)),
        unary(
            "CheckArtifact",
            st.builds(pb.CheckArtifactRequest, sha256=shas, name=text, requires=st.lists(text, max_size=4)),
        ),  # fmt: skip
        unary("StartRun", st.builds(pb.StartRunRequest, spec_json=spec_json)),
        stream("WatchRun", st.builds(pb.WatchRunRequest, run_id=run_ids, after_seq=u64)),
        unary("GetRun", st.builds(pb.GetRunRequest, run_id=run_ids)),
        unary("ListRuns", st.builds(pb.ListRunsRequest, limit=st.integers(0, 2**32 - 1))),
        unary("CancelRun", st.builds(pb.CancelRunRequest, run_id=run_ids)),
        stream(
            "FetchRunFile",
            st.builds(pb.FetchRunFileRequest, run_id=run_ids, name=st.one_of(st.sampled_from(NASTY), text)),
        ),  # fmt: skip
        uploads,
        st.builds(health_pb2.HealthCheckRequest, service=text).map(
            lambda req: ("Health.Check", lambda s, h, t: h.Check(req, timeout=t))
        ),
    )


def _listing(root: Path, skip: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip:
            dirnames[:] = []
            continue
        out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return out


@pytest.mark.fuzz
@pytest.mark.slow
def test_fuzzed_rpcs_never_crash_hang_escape_or_leak(
    agent_process, tiny_onnx_model, tmp_path, tmp_path_factory
):
    # hypothesis' own cache (not the agent's doing) goes elsewhere than the dirs compared;
    # beside the session's temp dirs, so its unicode tables (3.5 s to build) outlive one session
    set_hypothesis_home_dir(tmp_path_factory.getbasetemp().parent / "hypothesis-home")
    try:
        _fuzz(agent_process, tiny_onnx_model, tmp_path)
    finally:
        set_hypothesis_home_dir(None)


def _fuzz(agent_process, tiny_onnx_model, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ap = agent_process("--artifact-quota", "64M", state_dir=state)
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(ap.address))
    model_sha = push_file(ap.stub, tiny_onnx_model)
    spec = {"kind": "bench", "model_sha256": model_sha, "warmup_s": 0, "duration_s": 0.05,
            "min_iterations": 1, "placement": False, "telemetry": False}  # fmt: skip
    run_id = ap.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec)), timeout=10).run_id
    for _ in ap.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120):
        pass  # a finished run for WatchRun, GetRun and FetchRunFile to find
    outside_before = _listing(tmp_path, state) | set(os.listdir(Path.cwd()))
    proc = psutil.Process(ap.proc.pid)

    seen: dict[str, int] = {}

    def check(calls) -> None:
        for name, fn in calls:
            seen[name] = seen.get(name, 0) + 1
            t0 = time.monotonic()
            try:
                fn(ap.stub, health, DEADLINE_S)
                code, details = grpc.StatusCode.OK, ""
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details() or ""
            assert code in ALLOWED, (name, code, details)
            assert "\n" not in details and len(details) <= 500, (name, details)
            assert time.monotonic() - t0 < DEADLINE_S

    batches = st.lists(_calls(run_id, model_sha), min_size=BATCH, max_size=BATCH)

    def run(examples: int) -> None:
        opts = settings(max_examples=examples, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))  # fmt: skip
        opts(given(batches)(check))()

    # warm-up (300 calls): the agent's threads, caches and allocator settle before RSS is taken
    run(300 // BATCH)
    rss_start = proc.memory_info().rss
    seen.clear()
    run(CASES // BATCH)

    assert sum(seen.values()) >= CASES, seen
    assert len(seen) == 11, seen  # every RPC was exercised (GetInfo's one request only once)
    # still serving, and nothing was written outside the state dir
    assert json.loads(ap.stub.GetInfo(pb.GetInfoRequest(), timeout=10).info_json)["schema"]
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == 1
    assert (_listing(tmp_path, state) | set(os.listdir(Path.cwd()))) == outside_before
    assert ap.stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).status == "completed"
    assert [r.run_id for r in ap.stub.ListRuns(pb.ListRunsRequest(), timeout=10).runs] == [run_id]
    # the agent's gc and freed arenas catch up a moment later: poll (bounded) for it
    wait_until(lambda: proc.memory_info().rss <= rss_start * 1.10, timeout=5)
    rss_end = proc.memory_info().rss
    assert rss_end <= rss_start * 1.10, (rss_start >> 20, rss_end >> 20)
    assert ap.stop() == 0
