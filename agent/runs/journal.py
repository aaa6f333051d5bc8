"""The run journal: append-only JSONL, one event ``{seq, t_ns, kind, payload}``
a line. Each event is fsynced before it is handed to watchers, so anything a
controller has seen survives an agent crash. Seq numbers are per run,
gap-free, from 1.

Watchers block on ``wait_after(seq)``; finished runs are read from disk.
Only the newest events stay in memory, so a soak of any length costs the agent
the same memory; a watcher that resumes from further back reads the file.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.clock import now_ns

log = logging.getLogger("edgebench.agent.runs")

EVENT_KINDS = ("state", "phase", "progress", "window", "sample", "log", "result")
MEMORY_EVENTS = 2048  # the tail live watchers read from memory (~10 min of a soak)
MARK_EVERY = 1024  # a (seq, byte offset) mark this often: a late watcher seeks, not rescans


def usable(ev: Any, after: int = 0) -> str | None:
    """Why a decoded journal line cannot be used as an event (None: it can).
    A power cut or a bug can leave complete lines that are not events; readers
    skip them rather than fail the agent on them (issue 13)."""
    if not isinstance(ev, dict):
        return "not an object"
    seq = ev.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0:
        return f"bad seq {seq!r}"[:80]
    if seq <= after:
        return f"seq {seq} does not follow {after}"
    if not isinstance(ev.get("kind"), str):
        return "no kind"
    if not isinstance(ev.get("payload", {}), dict):
        return "payload is not an object"
    if not isinstance(ev.get("t_ns", 0), int):
        return "bad t_ns"
    return None


class _Skipped:
    """Counts unusable records of one read; logs them once, not per line."""

    def __init__(self, path: Path) -> None:
        self.path, self.count, self.first = path, 0, ""

    def add(self, line_no: int, why: str) -> None:
        self.count += 1
        if not self.first:
            self.first = f"line {line_no}: {why}"

    def log(self) -> None:
        if self.count:
            log.warning(
                "journal %s: skipped %d unusable record(s), first at %s", self.path, self.count, self.first
            )


def iter_events(path: Path, after_seq: int = 0, offset: int = 0) -> Iterator[dict[str, Any]]:
    """Events with seq > after_seq, read lazily from byte ``offset`` (a line
    start). A torn last line (crash mid-write, or a line being written now)
    ends the read; a complete line that is not a usable event is skipped."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    skipped = _Skipped(path)
    last = 0
    with f:
        f.seek(offset)
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break
            try:
                ev = json.loads(line)
            except ValueError:
                skipped.add(n, "not JSON")
                continue
            why = usable(ev, last)
            if why is not None:
                skipped.add(n, why)
                continue
            last = ev["seq"]
            ev.setdefault("payload", {})
            if last > after_seq:
                yield ev
    skipped.log()


def read_events(
    path: Path, after_seq: int = 0, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """``iter_events`` as a list of at most ``limit`` events."""
    return list(itertools.islice(iter_events(path, after_seq, offset), limit))


class Journal:
    def __init__(self, path: Path, memory_events: int = MEMORY_EVENTS) -> None:
        self.path = Path(path)
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=memory_events)
        self._marks: list[tuple[int, int]] = []  # (seq, byte offset of its line), every MARK_EVERY
        self._last_seq = 0
        self._gapless = True
        self._size = 0
        # one pass over what is there (never all of it in memory): the tail,
        # the marks, the size; a half-written last line (the agent died
        # mid-write) is cut so appends start on a clean line; a complete line
        # that is no usable event stays, skipped
        skipped = _Skipped(self.path)
        with open(self.path, "ab+") as f:
            f.seek(0)
            for n, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    f.truncate(self._size)
                    break
                try:
                    ev = json.loads(line)
                except ValueError:
                    ev = None
                why = usable(ev, self._last_seq) if ev is not None else "not JSON"
                if why is None:
                    self._note(ev, self._size)
                else:
                    skipped.add(n, why)
                self._size += len(line)
        skipped.log()
        # opened on the first append and released while the run waits in the
        # queue: a queued run holds no file descriptor (issue 13: ~1,000
        # queued runs used up the agent's 1,024)
        self._fd: int | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def _note(self, ev: dict[str, Any], offset: int) -> None:
        ev.setdefault("payload", {})
        if self._last_seq and ev["seq"] != self._last_seq + 1:
            self._gapless = False  # skipped records left a hole: the tail is searched, not indexed
        if ev["seq"] % MARK_EVERY == 1:
            self._marks.append((ev["seq"], offset))
        self._events.append(ev)
        self._last_seq = ev["seq"]

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def closed(self) -> bool:
        return self._closed

    def add_listener(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(fn)

    def append(self, kind: str, payload: dict[str, Any] | None = None, t_ns: int | None = None) -> dict:
        with self._cond:
            if self._closed:
                raise RuntimeError("journal is closed")
            ev = {
                "seq": self._last_seq + 1,
                "t_ns": int(t_ns if t_ns is not None else now_ns()),
                "kind": kind,
                "payload": payload or {},
            }
            line = (json.dumps(ev, separators=(",", ":"), default=_jsonable) + "\n").encode()
            self._write(line)
            # only now may anyone see it
            self._note(ev, self._size)
            self._size += len(line)
            self._cond.notify_all()
        for fn in self._listeners:
            fn(ev)
        return ev

    def _write(self, line: bytes) -> None:
        """Append one line durably, or raise OSError naming the journal with
        the file cut back to its last whole line (a full disk must not leave
        half a record that later appends would follow)."""
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            if self._fd is not None:
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError:
                    pass
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from exc

    def release(self) -> None:
        """Close the file until the next append (the run waits in the queue)."""
        with self._cond:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def events_after(self, seq: int) -> list[dict[str, Any]]:
        return self.wait_after(seq, 0)

    def wait_after(self, seq: int, timeout: float) -> list[dict[str, Any]]:
        """Events past ``seq`` (a batch: call again from the last one seen);
        blocks up to ``timeout`` while there are none and the journal is open."""
        with self._cond:
            if self._last_seq <= seq and not self._closed:
                self._cond.wait(timeout)
            got = self._from_memory(seq)
            if got is not None:
                return got
            # older than the memory tail: the file has it (every event is
            # flushed before it is in memory); seek to the mark at or before
            # seq+1 and read without holding up appends
            i = bisect.bisect_right(self._marks, (seq + 1, 1 << 62)) - 1
            offset = self._marks[i][1] if i >= 0 else 0
        return read_events(self.path, seq, self._events.maxlen, offset)

    def _from_memory(self, seq: int) -> list[dict[str, Any]] | None:
        """Events past ``seq`` from the in-memory tail; None when it no longer
        reaches back that far. Seqs are gap-free, so the tail is indexable."""
        if not self._events:
            return [] if seq >= self._last_seq else None
        if seq + 1 < self._events[0]["seq"]:
            return None
        if not self._gapless:
            return [e for e in self._events if e["seq"] > seq]
        first = self._last_seq - len(self._events) + 1
        return list(itertools.islice(self._events, max(0, seq + 1 - first), None))

    def close(self) -> None:
        with self._cond:
            if not self._closed:
                self._closed = True
                self._close_fd()
            self._cond.notify_all()


def _jsonable(obj: Any) -> Any:
    # numpy scalars and paths sneak into payloads; keep the journal writable
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
