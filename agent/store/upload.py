"""One resumable upload stream into the artifact store: chunks are hashed
and written on a writer thread, the committed offset is fsynced and recorded
in the upload's sidecar every ``COMMIT_EVERY_BYTES`` (a crash loses at most
that), and a complete, verified upload is renamed into place atomically.
The store (``agent/store/artifacts.py``) opens one with ``ArtifactStore.begin``.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from pathlib import Path
from typing import Protocol

from agent import atomic
from agent.store.errors import StoreError, disk_error
from agent.store.paths import artifact_path

# fsync + record the committed offset every this many bytes: bounds what a
# crash loses without stalling the stream on frequent fsyncs.
COMMIT_EVERY_BYTES = 64 << 20
_QUEUE_CHUNKS = 16  # chunks in flight between the gRPC thread and the writer
_READ_BLOCK = 4 << 20


class Store(Protocol):
    """What an upload needs of the store (``ArtifactStore``)."""

    state_dir: Path

    def path(self, sha256: str) -> Path | None: ...
    def part_path(self, sha256: str) -> Path: ...
    def write_sidecar(self, sha256: str, data: dict) -> None: ...
    def remove_partial(self, sha256: str) -> None: ...
    def release(self, sha256: str) -> None: ...


class Upload:
    """One upload stream: ``write()`` chunks, then ``finish()``; ``close()``
    always (it commits what arrived so a later upload resumes from there).

    Hashing and disk writes run on a writer thread fed through a short queue:
    sha256 and file writes release the GIL, so they overlap with gRPC
    receiving the next chunk instead of taking turns with it.
    """

    def __init__(
        self,
        store: Store,
        sha256: str,
        size_bytes: int,
        name: str,
        offset: int,
        deduplicated: bool = False,
        requires: list[str] | None = None,
    ) -> None:
        self.store = store
        self.requires = list(requires or [])
        self.sha256 = sha256
        self.size_bytes = int(size_bytes)
        self.name = name
        self.deduplicated = deduplicated
        self.offset = offset  # bytes written to the part file (writer thread)
        self.received = offset  # bytes accepted from the stream
        self._closed = deduplicated
        self._file = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        if deduplicated:
            return
        self._hasher = hashlib.sha256()
        part = store.part_path(sha256)
        try:
            self._open(part, offset)
        except OSError:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass  # the disk that failed the open fails the flush too
            if offset == 0:
                store.remove_partial(sha256)  # nothing of it was committed
            raise
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._thread = threading.Thread(target=self._drain, name="edgebench-upload", daemon=True)
        self._thread.start()

    def _open(self, part: Path, offset: int) -> None:
        if offset == 0:
            self._file = open(part, "wb")
        else:
            # re-hash the committed bytes, drop anything past them
            self._file = open(part, "r+b")
            self._file.truncate(offset)
            remaining = offset
            while remaining:
                block = self._file.read(min(_READ_BLOCK, remaining))
                if not block:
                    break
                self._hasher.update(block)
                remaining -= len(block)
            self._file.seek(offset)
        self._since_commit = 0
        self._commit()

    def write(self, data: bytes) -> None:
        if self.deduplicated:
            return
        if self._error is not None:
            self._fail()
            raise self._write_failure()
        if self.received + len(data) > self.size_bytes:
            self._fail()
            raise StoreError(
                "INVALID_ARGUMENT",
                f"upload is larger than its declared size of {self.size_bytes} bytes",
            )
        self.received += len(data)
        self._queue.put(data)

    def finish(self) -> Path:
        """Verify and move into place; raises StoreError when incomplete or wrong."""
        if self.deduplicated:
            return self.store.path(self.sha256)  # type: ignore[return-value]
        self._join()
        if self._error is not None:
            self._fail()
            raise self._write_failure()
        try:
            return self._finish()
        except OSError as exc:
            self._fail()  # a half-finished artifact must not remain
            raise disk_error(exc, "while storing the upload") from None

    def _write_failure(self) -> StoreError:
        if isinstance(self._error, OSError):
            return disk_error(self._error, "while writing the upload")
        return StoreError("INTERNAL", f"writing the upload failed: {self._error}")

    def _finish(self) -> Path:
        if self.offset < self.size_bytes:
            self._commit()
            raise StoreError(
                "ABORTED",
                f"upload incomplete: {self.offset} of {self.size_bytes} bytes; "
                f"resume from offset {self.offset}",
            )
        digest = self._hasher.hexdigest()
        if digest != self.sha256:
            self._fail()
            raise StoreError(
                "DATA_LOSS",
                f"sha256 mismatch: declared {self.sha256[:12]}..., received bytes hash to {digest[:12]}...; "
                "nothing stored",
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        dest = artifact_path(self.store.state_dir, self.sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        meta = {"name": self.name, "size_bytes": self.size_bytes, "stored_unix": time.time()}
        if self.requires:
            meta["requires"] = self.requires
        atomic.write_json(dest.with_suffix(".json"), meta)
        os.replace(self.store.part_path(self.sha256), dest)
        atomic.fsync_dir(dest.parent)
        self.store.remove_partial(self.sha256)
        self._closed = True
        self.store.release(self.sha256)
        return dest

    def close(self) -> None:
        """Stream ended or broke: keep the committed bytes for a resume."""
        if self._closed:
            return
        self._closed = True
        try:
            self._join()
            if self._error is None:
                try:
                    self._commit()
                except OSError:
                    pass  # the sidecar keeps the last committed offset: a resume starts there
            self._file.close()
        finally:
            self.store.release(self.sha256)

    def _drain(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self._error is not None:
                continue  # keep draining so write() never blocks forever
            try:
                self._file.write(data)
                self._hasher.update(data)
                self.offset += len(data)
                self._since_commit += len(data)
                if self._since_commit >= COMMIT_EVERY_BYTES:
                    self._commit()
            except BaseException as exc:  # ENOSPC, EIO: reported by the next write()/finish()
                self._error = exc

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self.store.write_sidecar(
            self.sha256, {"offset": self.offset, "size_bytes": self.size_bytes, "name": self.name}
        )
        self._since_commit = 0

    def _fail(self) -> None:
        """A wrong upload: nothing of it may remain."""
        self._closed = True
        try:
            self._join()
            self._file.close()
        finally:
            self.store.remove_partial(self.sha256)
            self.store.release(self.sha256)
