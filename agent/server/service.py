"""The gRPC servicer: every RPC of edgebench.v1.Agent, mapping store, spec and
run errors onto gRPC status codes with one-line messages."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from agent import portability
from agent.errors import BadInput, EdgebenchError, ResourceExhausted, one_line
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.rpc.edgebench.v1 import agent_pb2_grpc as pb_grpc
from agent.runs.manager import RunManager
from agent.runs.registry import PAGE_MAX, RunDir, valid_run_id
from agent.service.housekeeping import delete_run
from agent.spec import RunSpec
from agent.store.artifacts import ArtifactStore
from agent.store.errors import StoreError, disk_error

FILE_CHUNK_BYTES = 1 << 20
# a status message: one line, short enough that no caller's value comes back whole
MESSAGE_CHARS = 300
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _abort(context: grpc.ServicerContext, status: str | grpc.StatusCode, message: str) -> None:
    code = status if isinstance(status, grpc.StatusCode) else getattr(grpc.StatusCode, status)
    context.abort(code, one_line(message, MESSAGE_CHARS))


def _shown(value: str, limit: int = 40) -> str:
    """A caller's value quoted in a message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class AgentService(pb_grpc.AgentServicer):
    def __init__(self, store: ArtifactStore, runs: RunManager, info: Callable[[], dict]) -> None:
        self.store = store
        self.runs = runs
        self.info = info

    # -- info ----------------------------------------------------------------
    def GetInfo(self, request: pb.GetInfoRequest, context: grpc.ServicerContext) -> pb.GetInfoResponse:
        try:
            return pb.GetInfoResponse(info_json=json.dumps(self.info(), default=str))
        except Exception as exc:
            _abort(context, grpc.StatusCode.INTERNAL, f"fingerprint failed: {exc}")

    # -- artifacts -----------------------------------------------------------
    def StatArtifact(
        self, request: pb.StatArtifactRequest, context: grpc.ServicerContext
    ) -> pb.StatArtifactResponse:
        try:
            st = self.store.stat(request.sha256)
        except StoreError as exc:
            _abort(context, exc.status, exc.message)
        return pb.StatArtifactResponse(
            present=st.present,
            size_bytes=st.size_bytes,
            committed_offset=st.committed_offset,
            quota_bytes=st.quota_bytes,
        )

    def Upload(
        self, request_iterator: Iterator[pb.UploadChunk], context: grpc.ServicerContext
    ) -> pb.UploadResponse:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the first upload message must be the header")
        h = first.header
        upload = None
        try:
            requires = [str(r) for r in portability.parse_all(h.requires)]
        except BadInput as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            upload = self.store.begin(h.sha256, h.size_bytes, h.name, h.offset, requires)
            if upload.deduplicated:
                # the bytes are already here: do not read the rest of the stream
                return pb.UploadResponse(sha256=h.sha256, size_bytes=h.size_bytes, deduplicated=True)
            for chunk in request_iterator:
                if chunk.WhichOneof("part") != "data":
                    raise StoreError("INVALID_ARGUMENT", "only data may follow the upload header")
                upload.write(chunk.data)
            upload.finish()
            return pb.UploadResponse(sha256=h.sha256, size_bytes=h.size_bytes, deduplicated=False)
        except StoreError as exc:
            _abort(context, exc.status, exc.message)
        except OSError as exc:  # the store maps its own; anything left is the disk too
            err = disk_error(exc, "during the upload")
            _abort(context, err.status, err.message)
        finally:
            if upload is not None:
                upload.close()  # a broken stream keeps its committed bytes for a resume

    def CheckArtifact(
        self, request: pb.CheckArtifactRequest, context: grpc.ServicerContext
    ) -> pb.CheckArtifactResponse:
        try:
            reqs = portability.parse_all(request.requires)
            name = request.name
            if request.sha256:
                reqs += portability.of_stored(self.store, request.sha256)
                name = name or self.store.name(request.sha256)
            line = portability.mismatch(reqs, self.info(), name) if reqs else None
        except BadInput as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except StoreError as exc:
            _abort(context, exc.status, exc.message)
        return pb.CheckArtifactResponse(
            runnable=line is None, message=line or "", requires=sorted({str(r) for r in reqs})
        )

    def ListArtifacts(
        self, request: pb.ListArtifactsRequest, context: grpc.ServicerContext
    ) -> pb.ListArtifactsResponse:
        stored = [pb.ArtifactRecord(**a) for a in self.store.list()]
        partial = [pb.ArtifactRecord(partial=True, **a) for a in self.store.partials()]
        return pb.ListArtifactsResponse(
            artifacts=stored + partial, quota_bytes=self.store.quota_bytes, used_bytes=self.store.used_bytes()
        )

    def DeleteArtifact(
        self, request: pb.DeleteArtifactRequest, context: grpc.ServicerContext
    ) -> pb.DeleteArtifactResponse:
        def in_use(sha: str) -> bool:
            return any(
                sha in (s.model_sha256, s.inputs_sha256, s.reference_sha256)
                for s in self.runs.in_flight().values()
            )

        try:
            freed, partial = self.store.delete(request.sha256, in_use)
        except StoreError as exc:
            _abort(context, exc.status, exc.message)
        except OSError as exc:
            err = disk_error(exc, "deleting the artifact")
            _abort(context, err.status, err.message)
        return pb.DeleteArtifactResponse(freed_bytes=freed, partial=partial)

    # -- runs ----------------------------------------------------------------
    def StartRun(self, request: pb.StartRunRequest, context: grpc.ServicerContext) -> pb.StartRunResponse:
        try:
            data = json.loads(request.spec_json)
        except ValueError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"run spec is not JSON: {exc}")
        except RecursionError:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "run spec JSON is nested too deeply")
        try:
            spec = RunSpec.from_dict(data)
        except BadInput as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
            # from_dict checks every field; this is the net under it: still bad input
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"bad run spec: {type(exc).__name__}: {exc}")
        try:
            run_id = self.runs.start(spec)
        except BadInput as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ResourceExhausted as exc:  # a full queue, a full disk: try later
            _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except EdgebenchError as exc:
            _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        for sha in (spec.model_sha256, spec.inputs_sha256, spec.reference_sha256):
            if sha:
                self.store.touch(sha)  # "last used" in `edgebench artifacts`
        return pb.StartRunResponse(run_id=run_id)

    def WatchRun(self, request: pb.WatchRunRequest, context: grpc.ServicerContext) -> Iterator[pb.RunEvent]:
        self._run_dir(request.run_id, context)
        try:
            for ev in self.runs.watch(request.run_id, int(request.after_seq), context.is_active):
                yield pb.RunEvent(
                    run_id=request.run_id,
                    seq=ev["seq"],
                    t_ns=ev["t_ns"],
                    kind=ev["kind"],
                    payload_json=json.dumps(ev.get("payload") or {}, default=str),
                )
        except KeyError:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"no run {_shown(request.run_id)}")

    def GetRun(self, request: pb.GetRunRequest, context: grpc.ServicerContext) -> pb.RunRecord:
        return self._record(self._run_dir(request.run_id, context), with_result=True)

    def ListRuns(self, request: pb.ListRunsRequest, context: grpc.ServicerContext) -> pb.ListRunsResponse:
        # a page, from the run index: a reply's cost does not grow with history
        limit = int(request.limit)
        try:
            runs, token = self.runs.registry.page(min(limit or PAGE_MAX, PAGE_MAX), request.page_token)
        except ValueError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.ListRunsResponse(
            runs=[self._record(rd, with_result=False) for rd in runs], next_page_token=token
        )

    def CancelRun(self, request: pb.CancelRunRequest, context: grpc.ServicerContext) -> pb.RunRecord:
        rd = self._run_dir(request.run_id, context)
        if self.runs.cancel(request.run_id):
            self.runs.wait(request.run_id, timeout=10.0)
        return self._record(rd, with_result=True)

    def DeleteRun(self, request: pb.DeleteRunRequest, context: grpc.ServicerContext) -> pb.DeleteRunResponse:
        self._run_dir(request.run_id, context)
        try:
            freed = delete_run(self.runs, request.run_id)
        except StoreError as exc:
            _abort(context, exc.status, exc.message)
        except OSError as exc:
            _abort(context, grpc.StatusCode.INTERNAL, f"deleting run {request.run_id}: {exc.strerror or exc}")
        return pb.DeleteRunResponse(freed_bytes=freed)

    def FetchRunFile(
        self, request: pb.FetchRunFileRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.FileChunk]:
        rd = self._run_dir(request.run_id, context)
        name = request.name
        if not _PLAIN_NAME.match(name or "") or ".." in name:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"bad file name {_shown(name)}: a plain name inside the run",
            )
        path = rd.path / name
        try:
            f = open(path, "rb")
        except OSError:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"run {rd.run_id} has no file {_shown(name)}")
        with f:
            total = os.fstat(f.fileno()).st_size
            sent = False
            while True:
                data = f.read(FILE_CHUNK_BYTES)
                if not data and sent:
                    break
                yield pb.FileChunk(data=data, total_bytes=total)
                sent = True
                if not data:
                    break

    # -- helpers -------------------------------------------------------------
    def _run_dir(self, run_id: str, context: grpc.ServicerContext) -> RunDir:
        if not valid_run_id(run_id):
            # NOT_FOUND as for any unknown run; the message says why, echoing little
            why = f"bad run id {_shown(run_id)}: expected YYYYMMDDTHHMMSSmmmZ-<6 hex>"
            _abort(context, grpc.StatusCode.NOT_FOUND, why)
        rd = self.runs.registry.get(run_id)
        if rd is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"no run {run_id}")
        return rd

    def _record(self, rd: RunDir, with_result: bool) -> pb.RunRecord:
        spec = rd.spec()
        st = rd.state()
        result: Any = rd.result() if with_result else None
        return pb.RunRecord(
            run_id=rd.run_id,
            kind=str(spec.get("kind") or ""),
            status=str(st.get("status") or ""),
            spec_json=json.dumps(spec),
            result_json=json.dumps(result, default=str) if result is not None else "",
            last_seq=self.runs.last_seq(rd.run_id),
            created_unix=float(st.get("created_unix") or 0.0),
            files=rd.files(),
        )
