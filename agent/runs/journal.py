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
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.clock import now_ns

EVENT_KINDS = ("state", "phase", "progress", "window", "sample", "log", "result")
MEMORY_EVENTS = 2048  # the tail live watchers read from memory (~10 min of a soak)
MARK_EVERY = 1024  # a (seq, byte offset) mark this often: a late watcher seeks, not rescans


def iter_events(path: Path, after_seq: int = 0, offset: int = 0) -> Iterator[dict[str, Any]]:
    """Events with seq > after_seq, read lazily from byte ``offset`` (a line
    start). A torn last line (crash mid-write, or a line being written now)
    ends the read."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                ev = json.loads(line)
            except ValueError:
                break  # only the last line can be torn; nothing valid follows it
            if isinstance(ev, dict) and ev.get("seq", 0) > after_seq:
                yield ev


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
        self._size = 0
        # one pass over what is there (never all of it in memory): the tail,
        # the marks, the size; a half-written last line (the agent died
        # mid-write) is cut so appends start on a clean line
        with open(self.path, "ab+") as f:
            f.seek(0)
            for line in f:
                try:
                    ev = json.loads(line) if line.endswith(b"\n") else None
                except ValueError:
                    ev = None
                if not isinstance(ev, dict):
                    f.truncate(self._size)
                    break
                self._note(ev, self._size)
                self._size += len(line)
        self._file = open(self.path, "ab")
        self._cond = threading.Condition()
        self._closed = False
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def _note(self, ev: dict[str, Any], offset: int) -> None:
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
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
            # only now may anyone see it
            self._note(ev, self._size)
            self._size += len(line)
            self._cond.notify_all()
        for fn in self._listeners:
            fn(ev)
        return ev

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
        first = self._last_seq - len(self._events) + 1
        if seq + 1 < first:
            return None
        return list(itertools.islice(self._events, max(0, seq + 1 - first), None))

    def close(self) -> None:
        with self._cond:
            if not self._closed:
                self._closed = True
                self._file.close()
            self._cond.notify_all()


def _jsonable(obj: Any) -> Any:
    # numpy scalars and paths sneak into payloads; keep the journal writable
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
