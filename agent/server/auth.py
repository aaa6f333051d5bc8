"""Authentication: token and TLS files, mTLS credentials, and what counts as
loopback. The bearer token itself is checked on every RPC by the guard
(``agent.server.guard``), before a request's body is read.

Clients send the token as gRPC metadata ``authorization: Bearer <token>``.
"""

from __future__ import annotations

import ipaddress
import os

import grpc

from agent.errors import BadInput


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
