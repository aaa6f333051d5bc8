"""Authentication: a bearer token checked on every RPC by a server interceptor,
and optional mTLS (server certificate, plus client certificates verified
against ``--tls-client-ca``).

Clients send the token as gRPC metadata ``authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable
from typing import Any

import grpc

from agent.errors import BadInput

METADATA_KEY = "authorization"


def read_token_file(path: str | os.PathLike[str]) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as exc:
        raise BadInput(f"cannot read token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise BadInput(f"token file {path} is empty")
    if any(c.isspace() for c in token):
        raise BadInput(f"token file {path} must hold one token without spaces")
    return token


def read_pem(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BadInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise BadInput(f"{what} {path} is not a PEM file")
    return data


def server_credentials(cert: str, key: str, client_ca: str | None) -> grpc.ServerCredentials:
    """TLS credentials; with a client CA, clients must present a certificate it signed."""
    pair = (read_pem(key, "TLS key"), read_pem(cert, "TLS certificate"))
    ca = read_pem(client_ca, "TLS client CA") if client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or a wildcard: assume reachable from outside


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` / ``[::1]:PORT`` -> (host, port); BadInput when malformed."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BadInput(f"bad --listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:50551")
    return host, int(port)


def _abort_handler(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    def abort(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class TokenInterceptor(grpc.ServerInterceptor):
    """Rejects any RPC without ``authorization: Bearer <token>``: UNAUTHENTICATED."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        got = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == METADATA_KEY:
                got = value.encode() if isinstance(value, str) else value
                break
        if got is None:
            return _abort_handler(handler, "missing bearer token: pass --token-file")
        if not hmac.compare_digest(got, self._expected):
            return _abort_handler(handler, "invalid bearer token")
        return handler
