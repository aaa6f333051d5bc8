"""The artifact store over real gRPC on loopback: verified, deduplicated,
resumable uploads; bad uploads get a clear status and leave nothing behind."""

from __future__ import annotations

import hashlib
import os
import threading

import grpc
import pytest
from conftest import CHUNK, push_file, upload_chunks, wait_until

from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.store.artifacts import ArtifactStore, StoreError, artifact_path
from agent.store.paths import locate_artifact


def _blob(n: int, seed: int = 1) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (n // 32) + b"x" * (n % 32)


def _chunks(data: bytes, size: int = CHUNK):
    return [data[i : i + size] for i in range(0, len(data), size)]


def _store_files(state_dir) -> list[str]:
    """Everything in the artifact store and upload area (the lock file aside)."""
    out = []
    for sub in ("artifacts", "uploads"):
        for dirpath, _, files in os.walk(state_dir / sub):
            out += [os.path.join(dirpath, f) for f in files]
    return sorted(out)


def _upload(stub, data: bytes, sha: str | None = None, name: str = "m.onnx", offset: int = 0, size=None):
    sha = sha or hashlib.sha256(data).hexdigest()
    size = len(data) if size is None else size
    return stub.Upload(upload_chunks(_chunks(data[offset:]), sha, size, name, offset))


def test_upload_stores_verified_bytes_and_repush_is_a_stat_hit(agent, tmp_path):
    data = _blob(3 * CHUNK + 123)
    src = tmp_path / "model.onnx"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()

    assert not agent.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha)).present
    assert push_file(agent.stub, src) == sha
    stored = artifact_path(agent.state_dir, sha)
    assert stored == agent.state_dir / "artifacts" / sha[:2] / sha
    assert stored.read_bytes() == data
    st = agent.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha))
    assert st.present and st.size_bytes == len(data)
    assert list((agent.state_dir / "uploads").iterdir()) == []

    # a re-push moves no bytes: the server answers from the header alone
    mtime = stored.stat().st_mtime_ns
    sent = []

    def only_header():
        yield pb.UploadChunk(header=pb.UploadHeader(sha256=sha, size_bytes=len(data), name="model.onnx"))
        sent.append("data")  # reached only if the server asks for more
        yield pb.UploadChunk(data=data)

    resp = agent.stub.Upload(only_header())
    assert resp.deduplicated and resp.sha256 == sha
    assert stored.stat().st_mtime_ns == mtime
    path = locate_artifact(agent.state_dir / "runs" / "x", sha, "model")
    assert path == stored and ArtifactStore(agent.state_dir).name(sha) == "model.onnx"


def test_wrong_sha_is_data_loss_and_nothing_is_stored(agent):
    data = _blob(2 * CHUNK + 7)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(grpc.RpcError) as ei:
        _upload(agent.stub, data, sha=wrong)
    assert ei.value.code() == grpc.StatusCode.DATA_LOSS
    assert "sha256 mismatch" in ei.value.details() and "\n" not in ei.value.details()
    assert _store_files(agent.state_dir) == []
    st = agent.stub.StatArtifact(pb.StatArtifactRequest(sha256=wrong))
    assert not st.present and st.committed_offset == 0
    # still serving
    assert agent.stub.GetInfo(pb.GetInfoRequest()).info_json


def test_more_bytes_than_declared_is_rejected_and_removed(agent):
    data = _blob(CHUNK + 10)
    with pytest.raises(grpc.RpcError) as ei:
        _upload(agent.stub, data, size=CHUNK)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "larger than its declared size" in ei.value.details()
    assert _store_files(agent.state_dir) == []


def test_cancelled_upload_resumes_from_committed_offset(agent):
    data = _blob(6 * CHUNK + 5, seed=7)
    sha = hashlib.sha256(data).hexdigest()
    pause = threading.Event()
    finished = threading.Event()

    def first_half():
        yield pb.UploadChunk(header=pb.UploadHeader(sha256=sha, size_bytes=len(data), name="big.bin"))
        for c in _chunks(data[: 4 * CHUNK]):
            yield pb.UploadChunk(data=c)
        pause.set()
        finished.wait(30)  # the connection breaks while we "hang" here

    fut = agent.stub.Upload.future(first_half())
    assert pause.wait(10)
    part = agent.state_dir / "uploads" / f"{sha}.part"
    wait_until(lambda: part.exists() and part.stat().st_size >= 4 * CHUNK, timeout=10)
    fut.cancel()
    finished.set()

    def at_four_chunks() -> pb.StatArtifactResponse | None:
        st = agent.stub.StatArtifact(pb.StatArtifactRequest(sha256=sha))
        return st if st.committed_offset == 4 * CHUNK else None

    st = wait_until(at_four_chunks, timeout=10)
    assert st and not st.present
    committed = st.committed_offset

    # resuming from anywhere but the committed offset is refused
    with pytest.raises(grpc.RpcError) as ei:
        _upload(agent.stub, data, offset=CHUNK)
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"resume from {4 * CHUNK}" in ei.value.details()

    # only the rest travels, and the whole is verified
    resp = _upload(agent.stub, data, offset=committed)
    assert not resp.deduplicated
    assert artifact_path(agent.state_dir, sha).read_bytes() == data
    assert list((agent.state_dir / "uploads").iterdir()) == []


def test_short_stream_is_aborted_with_resume_point_and_resumes_after_restart(tmp_path):
    data = _blob(3 * CHUNK, seed=3)
    sha = hashlib.sha256(data).hexdigest()
    store = ArtifactStore(tmp_path / "s")
    up = store.begin(sha, len(data), "m.bin", 0)
    up.write(data[:CHUNK])
    with pytest.raises(StoreError) as ei:
        up.finish()
    up.close()
    assert ei.value.status == "ABORTED" and f"resume from offset {CHUNK}" in ei.value.message

    # a new store on the same dir (agent restart) knows the committed offset,
    # re-hashes the committed bytes and completes
    store2 = ArtifactStore(tmp_path / "s")
    assert store2.stat(sha).committed_offset == CHUNK
    up = store2.begin(sha, len(data), "m.bin", CHUNK)
    up.write(data[CHUNK:])
    assert up.finish().read_bytes() == data


def test_bytes_past_the_committed_offset_are_dropped_on_resume(tmp_path):
    data = _blob(2 * CHUNK, seed=4)
    sha = hashlib.sha256(data).hexdigest()
    store = ArtifactStore(tmp_path / "s")
    up = store.begin(sha, len(data), "m.bin", 0)
    up.write(data[:CHUNK])
    up.close()
    # as if the agent crashed after writing more bytes than it recorded
    with open(store.part_path(sha), "ab") as f:
        f.write(b"garbage-not-committed")
    assert store.stat(sha).committed_offset == CHUNK
    up = store.begin(sha, len(data), "m.bin", CHUNK)
    up.write(data[CHUNK:])
    assert up.finish().read_bytes() == data


def test_over_quota_is_resource_exhausted_and_nothing_stored(agent_factory):
    a = agent_factory(artifact_quota=CHUNK)
    big = _blob(CHUNK + 1)
    with pytest.raises(grpc.RpcError) as ei:
        _upload(a.stub, big)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota" in ei.value.details()
    assert _store_files(a.state_dir) == []

    # the quota counts what is already stored
    first = _blob(600 * 1024, seed=5)
    _upload(a.stub, first)
    st = a.stub.StatArtifact(pb.StatArtifactRequest(sha256=hashlib.sha256(first).hexdigest()))
    assert st.present and st.quota_bytes == CHUNK - len(first)
    second = _blob(600 * 1024, seed=6)
    with pytest.raises(grpc.RpcError) as ei:
        _upload(a.stub, second)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not artifact_path(a.state_dir, hashlib.sha256(second).hexdigest()).exists()
    assert list((a.state_dir / "uploads").iterdir()) == []


BAD_NAMES = ["../evil.onnx", "..", "dir/model.onnx", "dir\\model.onnx", "/etc/passwd", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_with_paths_are_invalid_argument_and_nothing_stored(agent, name):
    with pytest.raises(grpc.RpcError) as ei:
        _upload(agent.stub, b"payload", name=name)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in ei.value.details() and "\n" not in ei.value.details()
    assert _store_files(agent.state_dir) == []


def test_malformed_sha_and_header_are_invalid_argument(agent):
    with pytest.raises(grpc.RpcError) as ei:
        agent.stub.StatArtifact(pb.StatArtifactRequest(sha256="ABC"))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as ei:
        agent.stub.Upload(iter([pb.UploadChunk(data=b"no header")]))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header" in ei.value.details()


def test_uploads_in_progress_reserve_their_declared_size(tmp_path):
    store = ArtifactStore(tmp_path / "s", quota_bytes=CHUNK)
    a, b = _blob(600 * 1024, seed=8), _blob(600 * 1024, seed=9)
    sha_a, sha_b = hashlib.sha256(a).hexdigest(), hashlib.sha256(b).hexdigest()
    up = store.begin(sha_a, len(a), "a.bin", 0)
    with pytest.raises(StoreError) as ei:
        store.begin(sha_b, len(b), "b.bin", 0)
    assert ei.value.status == "RESOURCE_EXHAUSTED"
    # the same artifact cannot be uploaded twice at once
    with pytest.raises(StoreError) as ei:
        store.begin(sha_a, len(a), "a.bin", 0)
    assert ei.value.status == "ABORTED" and "already in progress" in ei.value.message
    up.write(a)
    up.finish()
    assert store.stat(sha_a).present and not store.stat(sha_b).present
