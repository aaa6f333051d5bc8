"""Bad input over gRPC gets one clear line and the right status (issue 13,
defect 9): run specs of the wrong types, nested JSON, absurd numbers, a full
disk at upload start, and caller values that must not come back whole."""

from __future__ import annotations

import errno
import hashlib
import json

import grpc
import pytest
from conftest import upload_chunks

from agent import atomic
from agent.errors import BadInput
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.spec import MAX_ITERATIONS, MAX_SECONDS, RunSpec
from agent.store import artifacts, upload

SHA = "a" * 64


def _spec(**kw) -> dict:
    spec = {"kind": "bench", "model_sha256": SHA}
    spec.update(kw)
    return spec


def _refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as ei:
        call()
    details = ei.value.details() or ""
    assert "\n" not in details and "Exception" not in details and "Traceback" not in details
    return ei.value.code(), details


BAD_SPECS = [
    (_spec(warmup_s="1"), "warmup_s must be a number"),
    (_spec(duration_s=[1]), "duration_s must be a number"),
    (_spec(min_iterations="100"), "min_iterations must be an integer"),
    (_spec(min_iterations=1e15), "min_iterations must be an integer"),
    (_spec(min_iterations=10**15), "min_iterations must be in [1, 1000000000]"),
    (_spec(threads=True), "threads must be an integer"),
    (_spec(labels=[]), "labels must be an object"),
    (_spec(labels={"k": {"deep": 1}}), "labels['k'] must be a string"),
    (_spec(providers="CPUExecutionProvider"), "providers must be a list"),
    (_spec(provider_options={"cpu": []}), "provider_options['cpu'] must be an object"),
    (_spec(input_shapes={"x": "1x3"}), "input_shapes['x'] must be a list"),
    (_spec(input_shapes={"x": [1, 2.5]}), "input_shapes['x'][1] must be an integer"),
    (_spec(model_name=5), "model_name must be a string"),
    (_spec(kind=["bench"]), "kind must be a string"),
    (_spec(placement="yes"), "placement must be true or false"),
    (_spec(meter={"kind": "ppk2", "port": 5}), "meter.port must be a string"),
    (_spec(meter=[1]), "meter must be an object"),
    (_spec(kind="soak", soak={"window_s": "10"}), "soak.window_s must be a number"),
    (_spec(kind="soak", soak={"window_s": 10, "nope": 1}), "unknown soak field(s): nope"),
    (_spec(kind="validate", reference_sha256=SHA, validation={"gates": []}), "validation.gates must be"),
    (_spec(kind="validate", reference_sha256=SHA, validation={"worst": "5"}), "validation.worst must be"),
    (_spec(labels=json.loads("[" * 500 + "]" * 500)), "labels must be an object"),
    # numbers that parse but mean nothing
    (_spec(warmup_s=float("nan")), "warmup_s must be a number of seconds in [0, 604800]"),
    (_spec(warmup_s=1e300), "warmup_s must be a number of seconds in [0, 604800]"),
    (_spec(duration_s=float("inf")), "duration_s must be a number of seconds"),
    (_spec(duration_s=-1), "duration_s must be a number of seconds"),
    (_spec(telemetry_rate_hz=float("nan")), "telemetry rate must be in (0, 1000] Hz"),
    (_spec(telemetry_rate_hz=0), "telemetry rate must be in (0, 1000] Hz"),
    (_spec(threads=10**6), "threads must be in [1, 1024]"),
    (_spec(transient_a=float("nan")), "transient_a must be a positive number"),
    (_spec(kind="soak", soak={"window_s": 1e300}), "soak window_s must be a number of seconds"),
    (_spec(kind="soak", soak={"target_ips": float("nan")}), "soak target_ips must be a finite number"),
    (_spec(input_shapes={"x": [1, 2**40]}), "input shape for 'x' must be positive integers"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_run_spec_of_wrong_types_or_absurd_numbers_is_bad_input(spec, message):
    with pytest.raises(BadInput) as ei:
        RunSpec.from_dict(spec)
    assert message in str(ei.value)


def test_run_spec_bounds_accept_their_limits():
    spec = RunSpec.from_dict(
        _spec(warmup_s=MAX_SECONDS, duration_s=0, min_iterations=MAX_ITERATIONS, telemetry_rate_hz=1000)
    )
    assert spec.min_iterations == MAX_ITERATIONS
    assert RunSpec.from_dict(_spec(warmup_s=2, min_iterations=1, threads=4)).warmup_s == 2
    # a spec made here (as the controller does) is checked the same way
    with pytest.raises(BadInput, match="duration_s must be a number"):
        RunSpec(kind="bench", model_sha256=SHA, duration_s="10").validate()  # type: ignore[arg-type]


def test_bad_run_specs_over_grpc_are_invalid_argument_in_one_line(agent):
    cases = [json.dumps(spec) for spec, _ in BAD_SPECS[:6]] + [
        "[" * 100_000 + "]" * 100_000,  # RecursionError in the JSON decoder
        '{"kind": "bench", "model_sha256": "' + SHA + '", "labels": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"kind": "bench", "model_sha256": "' + SHA + '", "warmup_s": NaN}',
        '{"kind": "bench", "model_sha256": "' + SHA + '", "warmup_s": 1e300}',
        '{"kind": "bench", "model_sha256": "' + SHA + '", "min_iterations": 1e15}',
        json.dumps({"kind": "bench", "model_sha256": SHA, "x" * 100_000: 1}),
        "7",
        "",
    ]
    for text in cases:
        request = pb.StartRunRequest(spec_json=text)
        code, details = _refused(lambda r=request: agent.stub.StartRun(r, timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (text[:80], code, details)
        assert len(details) <= 300
    assert not (agent.state_dir / "runs").exists() or list((agent.state_dir / "runs").iterdir()) == []


def test_long_caller_values_do_not_come_back(agent):
    long_id = "r" * 60_000  # under the 64 KiB limit of the request
    for call in (
        lambda: agent.stub.GetRun(pb.GetRunRequest(run_id=long_id), timeout=10),
        lambda: agent.stub.CancelRun(pb.CancelRunRequest(run_id=long_id), timeout=10),
        lambda: list(agent.stub.WatchRun(pb.WatchRunRequest(run_id=long_id), timeout=10)),
        lambda: list(agent.stub.FetchRunFile(pb.FetchRunFileRequest(run_id=long_id, name="x"), timeout=10)),
    ):
        code, details = _refused(call)
        assert code == grpc.StatusCode.NOT_FOUND
        assert details.startswith("bad run id 'rrrr") and len(details) < 100, details
    name = "n/" * 30_000
    code, details = _refused(lambda: agent.stub.Upload(upload_chunks(iter([b"x"]), SHA, 1, name), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and len(details) <= 300


class _FullDisk:
    """A file on a full disk: it opens (the inode exists), every write fails."""

    def __init__(self, f) -> None:
        self._f = f

    def write(self, data) -> int:
        if data:
            raise OSError(errno.ENOSPC, "No space left on device")
        return 0

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


def _full_disk_open(real_open):
    def fake(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return _FullDisk(f) if ("w" in mode or "+" in mode) else f

    return fake


def _disk_full(monkeypatch) -> None:
    """Every file the store writes, the upload's part and its atomic sidecars."""
    for mod in (upload, atomic):
        monkeypatch.setattr(mod, "open", _full_disk_open(open), raising=False)


def test_disk_full_at_upload_start_is_resource_exhausted_and_leaves_nothing(agent, monkeypatch, tmp_path):
    data = b"model bytes" * 100
    sha = hashlib.sha256(data).hexdigest()
    _disk_full(monkeypatch)
    code, details = _refused(
        lambda: agent.stub.Upload(upload_chunks(iter([data]), sha, len(data), "m.onnx"), timeout=10)
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "no space left on the agent's disk to start the upload; nothing stored"
    assert list((agent.state_dir / "uploads").iterdir()) == []
    # space is back: the same upload goes through
    monkeypatch.undo()
    resp = agent.stub.Upload(upload_chunks(iter([data]), sha, len(data), "m.onnx"), timeout=10)
    assert resp.sha256 == sha and not resp.deduplicated


def test_disk_full_on_resume_keeps_the_committed_part(tmp_path, monkeypatch):
    store = artifacts.ArtifactStore(tmp_path / "s", quota_bytes=1 << 20)
    data = bytes(range(256)) * 8
    sha = hashlib.sha256(data).hexdigest()
    up = store.begin(sha, len(data), "m.bin", 0)
    up.write(data[:1000])
    up.close()  # committed: 1000 bytes
    assert store.stat(sha).committed_offset == 1000
    _disk_full(monkeypatch)
    with pytest.raises(artifacts.StoreError) as ei:
        store.begin(sha, len(data), "m.bin", 1000)
    assert ei.value.status == "RESOURCE_EXHAUSTED"
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "s" / "uploads").iterdir()) == [f"{sha}.json", f"{sha}.part"]
    assert store.stat(sha).committed_offset == 1000
    up = store.begin(sha, len(data), "m.bin", 1000)
    up.write(data[1000:])
    assert up.finish().read_bytes() == data


def test_disk_full_while_finishing_leaves_nothing(tmp_path, monkeypatch):
    store = artifacts.ArtifactStore(tmp_path / "s", quota_bytes=1 << 20)
    data = b"abc" * 100
    sha = hashlib.sha256(data).hexdigest()
    up = store.begin(sha, len(data), "m.bin", 0)
    up.write(data)
    _disk_full(monkeypatch)
    with pytest.raises(artifacts.StoreError) as ei:
        up.finish()
    assert ei.value.status == "RESOURCE_EXHAUSTED" and "nothing stored" in ei.value.message
    monkeypatch.undo()
    assert list((tmp_path / "s" / "uploads").iterdir()) == []
    assert store.path(sha) is None
    assert [p for p in (tmp_path / "s" / "artifacts").rglob("*") if p.is_file()] == []
