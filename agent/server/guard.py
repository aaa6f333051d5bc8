"""Admission control for every RPC: the token check, a bound on concurrent calls
per method and a message size limit per method, all decided before the
call's body is read.

Why here and not in the servicer: grpcio reads a unary request (up to the
server's global message limit) before the handler runs, so a token check in
the handler lets any caller make the agent buffer that much per call. This
interceptor runs when the call's headers arrive, and every handler it returns
takes its request as a stream: nothing of the body is read until the call is
authenticated and admitted.

Threads: each admitted call holds one thread of the server's pool until it
ends (a WatchRun for the whole run). The pool is sized above the sum of the
per-method bounds (``pool_size``), so however many calls are in flight, a new
call always finds a thread: it is served, or refused with RESOURCE_EXHAUSTED
at once, and never waits behind open streams.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from agent.errors import one_line

log = logging.getLogger("edgebench.agent")

METADATA_KEY = "authorization"
KIB = 1 << 10
MIB = 1 << 20
# the largest Upload data chunk a client may send (the controller sends 1 MiB)
UPLOAD_CHUNK_MAX = 4 * MIB
# grpc's own limit, for every call: one upload chunk plus its framing
MAX_RECEIVE_BYTES = UPLOAD_CHUNK_MAX + 64 * KIB
# threads beyond the sum of the per-method bounds: they answer refusals
SPARE_THREADS = 8


@dataclass(frozen=True)
class MethodLimit:
    concurrent: int  # calls in flight at once; beyond: RESOURCE_EXHAUSTED
    message_bytes: int  # largest request message


DEFAULT_LIMIT = MethodLimit(concurrent=8, message_bytes=64 * KIB)
LIMITS: dict[str, MethodLimit] = {
    "/edgebench.v1.Agent/Upload": MethodLimit(4, MAX_RECEIVE_BYTES),
    "/edgebench.v1.Agent/StartRun": MethodLimit(8, 1 * MIB),  # spec_json
    "/edgebench.v1.Agent/CheckArtifact": MethodLimit(8, 256 * KIB),  # requires[]
    # a stream holds its thread until the run ends: the one large bound
    "/edgebench.v1.Agent/WatchRun": MethodLimit(32, 64 * KIB),
    "/edgebench.v1.Agent/FetchRunFile": MethodLimit(8, 64 * KIB),
    "/edgebench.v1.Agent/CancelRun": MethodLimit(8, 64 * KIB),
    # store housekeeping: rare, admin-driven calls (a listing walks the store)
    "/edgebench.v1.Agent/ListArtifacts": MethodLimit(2, 1 * KIB),
    "/edgebench.v1.Agent/DeleteArtifact": MethodLimit(2, 1 * KIB),
    "/edgebench.v1.Agent/DeleteRun": MethodLimit(2, 1 * KIB),
    "/grpc.health.v1.Health/Check": MethodLimit(8, 64 * KIB),
    "/grpc.health.v1.Health/Watch": MethodLimit(8, 64 * KIB),
}


def limit_of(method: str) -> MethodLimit:
    return LIMITS.get(method, DEFAULT_LIMIT)


def pool_size(methods: Iterable[str]) -> int:
    """Server threads for these methods: every bound full still leaves spares."""
    return sum(limit_of(m).concurrent for m in set(methods)) + SPARE_THREADS


class _Rejected:
    """What the size-checking deserializer hands over instead of a message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message


def _checked(deserialize: Callable[[bytes], Any] | None, limit: int, method: str) -> Callable[[bytes], Any]:
    name = method.rsplit("/", 1)[-1]

    def parse(raw: bytes) -> Any:
        if len(raw) > limit:
            # refused before protobuf parses it
            return _Rejected(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{name} message of {len(raw)} bytes is over its limit of {limit} bytes",
            )
        if deserialize is None:
            return raw
        try:
            return deserialize(raw)
        except Exception:
            return _Rejected(grpc.StatusCode.INVALID_ARGUMENT, f"{name} request is not a valid message")

    return parse


def _refusal(code: grpc.StatusCode, message: str, response_streaming: bool) -> grpc.RpcMethodHandler:
    """A handler that answers ``code`` without reading one byte of the request:
    it takes the request as a stream and never iterates it."""

    def refuse(request_iterator: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    if response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    return grpc.stream_unary_rpc_method_handler(refuse)


class Guard(grpc.ServerInterceptor):
    """Token (when set), then the per-method bounds; see the module docstring."""

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()

    def set_token(self, token: str | None) -> None:
        """Rotate the token (SIGHUP): one reference swap, so a call sees the
        old or the new one, never a mix."""
        self._expected = f"Bearer {token}".encode() if token else None

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        expected = self._expected
        if expected is not None:
            why = self._auth_failure(handler_call_details.invocation_metadata or (), expected)
            if why:
                # before looking the method up: an unknown method is no hint either
                return _refusal(grpc.StatusCode.UNAUTHENTICATED, why, response_streaming=False)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return self._guarded(handler_call_details.method, handler)

    def _auth_failure(self, metadata: Iterable[tuple[str, Any]], expected: bytes) -> str | None:
        for key, value in metadata:
            if key == METADATA_KEY:
                got = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(got, expected):
                    return None
                return "invalid bearer token"
        return "missing bearer token: pass --token-file"

    def _slot(self, method: str) -> threading.BoundedSemaphore:
        with self._slots_lock:
            sem = self._slots.get(method)
            if sem is None:
                sem = self._slots[method] = threading.BoundedSemaphore(limit_of(method).concurrent)
            return sem

    def _guarded(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        limit = limit_of(method)
        sem = self._slot(method)
        name = method.rsplit("/", 1)[-1]
        deserialize = _checked(handler.request_deserializer, limit.message_bytes, method)
        busy = f"{limit.concurrent} {name} calls are in progress, the most this agent serves; retry later"
        inner: Callable[..., Any] = (
            handler.stream_stream or handler.stream_unary or handler.unary_stream or handler.unary_unary  # type: ignore[assignment]
        )

        def admit(context: grpc.ServicerContext) -> None:
            if not sem.acquire(blocking=False):
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, busy)

        def request_of(request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
            """The one request of a unary-request method, or the checked stream."""
            if handler.request_streaming:
                return _checked_stream(request_iterator, context)
            first = next(request_iterator, None)
            if first is None:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{name} needs a request message")
            return _ok(first, context)

        def fail(exc: Exception, context: grpc.ServicerContext) -> None:
            if context.code() is not None:
                raise exc  # an abort: its status is already set
            # a bug answers one line; the traceback goes to the log only
            log.exception("%s failed", name)
            why = one_line(f"{name} failed: {type(exc).__name__}: {exc}", 300)
            context.abort(grpc.StatusCode.INTERNAL, why)

        if handler.response_streaming:
            non_blocking = getattr(inner, "experimental_non_blocking", False)

            if non_blocking:
                # health Watch answers through a callback and holds no thread:
                # its slot is freed when the call ends
                def stream_callback(request_iterator: Any, context: Any, send_response_callback: Any) -> None:
                    admit(context)
                    if not context.add_callback(sem.release):
                        sem.release()
                    inner(request_of(request_iterator, context), context, send_response_callback)

                stream_callback.experimental_non_blocking = True  # type: ignore[attr-defined]
                return grpc.stream_stream_rpc_method_handler(
                    stream_callback, deserialize, handler.response_serializer
                )

            def stream(request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
                admit(context)
                try:
                    try:
                        yield from inner(request_of(request_iterator, context), context)
                    except Exception as exc:
                        fail(exc, context)
                finally:
                    sem.release()

            return grpc.stream_stream_rpc_method_handler(stream, deserialize, handler.response_serializer)

        def unary(request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
            admit(context)
            try:
                return inner(request_of(request_iterator, context), context)
            except Exception as exc:
                fail(exc, context)
            finally:
                sem.release()

        return grpc.stream_unary_rpc_method_handler(unary, deserialize, handler.response_serializer)


def _ok(message: Any, context: grpc.ServicerContext) -> Any:
    if isinstance(message, _Rejected):
        context.abort(message.code, message.message)
    return message


def _checked_stream(request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for message in request_iterator:
        yield _ok(message, context)
