"""The store's errors: each carries a gRPC status name, so the servicer maps
them without the store importing grpc."""

from __future__ import annotations

import errno


class StoreError(Exception):
    """A rejected store operation. ``status`` is a grpc.StatusCode name."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def disk_error(exc: OSError, doing: str) -> StoreError:
    """An OSError while ``doing`` something, as a one-line StoreError: a full
    disk is RESOURCE_EXHAUSTED (the caller may free space and retry)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError("RESOURCE_EXHAUSTED", f"no space left on the agent's disk {doing}; nothing stored")
    return StoreError("INTERNAL", f"disk error {doing}: {exc.strerror or exc}")
