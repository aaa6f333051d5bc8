"""AgentClient: the controller's gRPC client for one agent.

gRPC failures become agent.errors exceptions with a one-line message, so the
CLI maps them to exit codes: unreachable agent / wrong token / bad upload ->
BadInput (2); anything else -> RunFailed (1).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from agent import atomic, portability
from agent.errors import BadInput, RunFailed
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.rpc.edgebench.v1 import agent_pb2_grpc as pb_grpc
from controller.paths import data_dir

CHUNK = 1 << 20
_BAD = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}


class _Token(
    grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamUnaryClientInterceptor
):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str) -> None:
        self._md = ("authorization", f"Bearer {token}")

    def _details(self, d: Any) -> Any:
        md = list(d.metadata or []) + [self._md]
        return d._replace(metadata=md) if hasattr(d, "_replace") else _Details(d, md)

    def intercept_unary_unary(self, cont: Any, d: Any, req: Any) -> Any:
        return cont(self._details(d), req)

    def intercept_unary_stream(self, cont: Any, d: Any, req: Any) -> Any:
        return cont(self._details(d), req)

    def intercept_stream_unary(self, cont: Any, d: Any, it: Any) -> Any:
        return cont(self._details(d), it)


class _Details(grpc.ClientCallDetails):
    def __init__(self, d: Any, md: list) -> None:
        self.method = d.method
        self.timeout = d.timeout
        self.metadata = md
        self.credentials = d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


def sha256_file(path: Path, cache: bool = True) -> str:
    """sha256 of a file; remembered by (path, size, mtime_ns) so a re-push of a
    large unchanged file costs a stat, not a re-hash."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = _cache_file() if cache else None
    known = _load_cache(cache_file)
    if key in known:
        return known[key]
    digest = _hash(path)
    if cache_file is not None and st.st_size >= 1 << 20:  # small files hash faster than the cache
        known[key] = digest
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_json(cache_file, dict(list(known.items())[-256:]), unique=True)
        except OSError:
            pass
    return digest


def _cache_file() -> Path | None:
    return data_dir() / "sha256-cache.json"


def _load_cache(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class AgentClient:
    def __init__(
        self,
        addr: str,
        token_file: str | Path | None = None,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.addr = addr
        self.timeout = timeout
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        if tls_ca:
            try:
                pems = {flag: Path(f).read_bytes() if f else None for flag, f in
                        (("--tls-ca", tls_ca), ("--tls-cert", tls_cert), ("--tls-key", tls_key))}  # fmt: skip
            except OSError as exc:
                raise BadInput(f"cannot read TLS file: {exc}") from None
            for flag, pem in pems.items():
                if pem is not None and b"-----BEGIN " not in pem:  # gRPC would log it, then not connect
                    raise BadInput(f"{flag}: not a PEM file")
            creds = grpc.ssl_channel_credentials(
                root_certificates=pems["--tls-ca"],
                private_key=pems["--tls-key"],
                certificate_chain=pems["--tls-cert"],
            )
            channel = grpc.secure_channel(addr, creds, options=opts)
        else:
            channel = grpc.insecure_channel(addr, options=opts)
        if token_file:
            try:
                token = Path(token_file).read_text().strip()
            except OSError as exc:
                raise BadInput(f"cannot read token file: {exc}") from None
            channel = grpc.intercept_channel(channel, _Token(token))
        self._channel = channel
        self.stub = pb_grpc.AgentStub(channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _err(self, exc: grpc.RpcError, what: str, name_it: bool = False) -> Exception:
        """One-line BadInput/RunFailed. Bad input keeps the agent's own sentence:
        an RPC name in front of it (``start run: ...``) reads as an internal
        error; ``name_it`` keeps ``what`` where it names the file concerned."""
        code = exc.code()
        details = (exc.details() or "").splitlines()[0] if exc.details() else ""
        if code == grpc.StatusCode.UNAVAILABLE:
            return BadInput(f"agent {self.addr} unreachable: {details}")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return BadInput(f"agent {self.addr} refused the token: {details}")
        if code in _BAD:
            return BadInput(f"{what}: {details}" if name_it or not details else details)
        return RunFailed(f"{what}: {details or code.name}")

    def _call(self, fn: Any, req: Any, what: str, timeout: float | None = None) -> Any:
        try:
            return fn(req, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise self._err(exc, what) from None

    def info(self) -> dict:
        return json.loads(self._call(self.stub.GetInfo, pb.GetInfoRequest(), "info", timeout=60).info_json)

    def stat(self, sha: str) -> pb.StatArtifactResponse:
        return self._call(self.stub.StatArtifact, pb.StatArtifactRequest(sha256=sha), "stat artifact")

    def push(
        self,
        path: str | Path,
        sha: str | None = None,
        max_bytes: int | None = None,
        requires: list[str] | None = None,
    ) -> str:
        """Upload a file; returns its sha256. A present artifact moves no bytes; a
        partial one resumes from the agent's committed offset. `requires`
        (``sm=87``...) and those of a ``<file>.json`` sidecar are stored with it.
        `sha` overrides the declared digest and `max_bytes` stops early (tests
        of bad/interrupted uploads)."""
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"file not found: {path}")
        reqs = _requirements(path, requires)
        size = path.stat().st_size
        sha = sha or sha256_file(path)
        st = self.stat(sha)
        if st.present and not reqs:
            return sha
        offset = 0 if st.present else st.committed_offset if st.committed_offset <= size else 0
        self.last_push_offset = offset

        def chunks() -> Iterator[pb.UploadChunk]:
            # on a present artifact the header alone records the requirements
            yield pb.UploadChunk(
                header=pb.UploadHeader(
                    sha256=sha, size_bytes=size, name=path.name, offset=offset, requires=reqs
                )
            )
            if st.present:
                return
            sent = offset
            with open(path, "rb") as f:
                f.seek(offset)
                while True:
                    n = CHUNK if max_bytes is None else min(CHUNK, max(0, offset + max_bytes - sent))
                    data = f.read(n) if n else b""
                    if not data:
                        return
                    sent += len(data)
                    yield pb.UploadChunk(data=data)

        try:
            self.stub.Upload(chunks(), timeout=max(60.0, size / 1e6))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DATA_LOSS:
                raise BadInput(f"upload of {path.name} rejected: {exc.details()}") from None
            raise self._err(exc, f"upload of {path.name}", name_it=True) from None
        return sha

    def check(self, path: str | Path, requires: list[str] | None = None) -> dict:
        """Can this file run on the agent's board? Moves no bytes: sends the
        requirements declared here and read from the file (name, EPContext,
        sidecar); the agent adds those stored with it. {runnable, message, requires}."""
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"file not found: {path}")
        reqs = _requirements(path, requires) + [str(r) for r in portability.from_artifact(path, path.name)]
        resp = self._call(
            self.stub.CheckArtifact,
            pb.CheckArtifactRequest(sha256=sha256_file(path), name=path.name, requires=reqs),
            "check artifact",
            timeout=60,
        )
        return {"runnable": resp.runnable, "message": resp.message, "requires": list(resp.requires)}

    def start_run(self, spec: Any) -> str:
        spec_dict = spec.to_dict() if hasattr(spec, "to_dict") else spec
        resp = self._call(
            self.stub.StartRun, pb.StartRunRequest(spec_json=json.dumps(spec_dict)), "start run"
        )
        return resp.run_id

    def watch(self, run_id: str, after_seq: int = 0, reconnect_s: float = 60.0) -> Iterator[dict]:
        """Events as dicts {seq, t_ns, kind, payload}; on UNAVAILABLE reconnects and
        resumes after the last seq seen, for up to `reconnect_s` without progress."""
        last = after_seq
        deadline = None
        while True:
            try:
                for ev in self.stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_seq=last)):
                    deadline = None
                    last = ev.seq
                    yield {
                        "seq": ev.seq,
                        "t_ns": ev.t_ns,
                        "kind": ev.kind,
                        "payload": json.loads(ev.payload_json or "{}"),
                    }
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise self._err(exc, "watch run") from None
                deadline = deadline or time.monotonic() + reconnect_s
                if time.monotonic() > deadline:
                    raise self._err(exc, "watch run") from None
                time.sleep(0.5)

    def get_run(self, run_id: str) -> dict:
        rec = self._call(self.stub.GetRun, pb.GetRunRequest(run_id=run_id), "get run")
        return _record(rec)

    def list_runs(self, limit: int = 0) -> list[dict]:
        """Newest first: ``limit`` runs, or every run (0), a page at a time (the
        agent caps a reply at 1,000 runs)."""
        out: list[dict] = []
        token = ""
        while True:
            want = min(limit - len(out), 1000) if limit else 0
            req = pb.ListRunsRequest(limit=want, page_token=token)
            resp = self._call(self.stub.ListRuns, req, "list runs")
            out += [_record(r) for r in resp.runs]
            token = resp.next_page_token
            if not token or (limit and len(out) >= limit):
                return out[:limit] if limit else out

    def cancel_run(self, run_id: str) -> dict:
        return _record(self._call(self.stub.CancelRun, pb.CancelRunRequest(run_id=run_id), "cancel run"))

    def list_artifacts(self) -> dict:
        """``{"artifacts": [...], "quota_bytes", "used_bytes"}``; stored first, then partial uploads."""
        resp = self._call(self.stub.ListArtifacts, pb.ListArtifactsRequest(), "list artifacts", timeout=60)
        arts = [
            {
                "sha256": a.sha256,
                "name": a.name,
                "size_bytes": a.size_bytes,
                "requires": list(a.requires),
                "stored_unix": a.stored_unix,
                "last_used_unix": a.last_used_unix,
                "partial": a.partial,
                "declared_bytes": a.declared_bytes,
            }
            for a in resp.artifacts
        ]
        return {"artifacts": arts, "quota_bytes": resp.quota_bytes, "used_bytes": resp.used_bytes}

    def delete_artifact(self, sha256: str) -> dict:
        resp = self._call(
            self.stub.DeleteArtifact, pb.DeleteArtifactRequest(sha256=sha256), "delete artifact"
        )
        return {"freed_bytes": resp.freed_bytes, "partial": resp.partial}

    def delete_run(self, run_id: str) -> dict:
        resp = self._call(self.stub.DeleteRun, pb.DeleteRunRequest(run_id=run_id), "delete run", timeout=120)
        return {"freed_bytes": resp.freed_bytes}

    def fetch_file(self, run_id: str, name: str, dest: str | Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            with open(tmp, "wb") as f:
                for chunk in self.stub.FetchRunFile(
                    pb.FetchRunFileRequest(run_id=run_id, name=name), timeout=300
                ):
                    f.write(chunk.data)
        except grpc.RpcError as exc:
            tmp.unlink(missing_ok=True)
            raise self._err(exc, f"fetch {name}", name_it=True) from None
        tmp.replace(dest)
        return dest


def _requirements(path: Path, requires: list[str] | None) -> list[str]:
    """Declared requirements plus the file's sidecar, checked (BadInput) and
    normalised before anything goes over the wire."""
    reqs = portability.parse_all(requires or []) + portability.from_sidecar(path)
    return list(dict.fromkeys(str(r) for r in reqs))


def _record(rec: pb.RunRecord) -> dict:
    return {
        "run_id": rec.run_id,
        "kind": rec.kind,
        "status": rec.status,
        "spec": json.loads(rec.spec_json) if rec.spec_json else None,
        "result": json.loads(rec.result_json) if rec.result_json else None,
        "last_seq": rec.last_seq,
        "created_unix": rec.created_unix,
        "files": list(rec.files),
    }
