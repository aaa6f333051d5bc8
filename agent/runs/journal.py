"""The run journal: append-only JSONL, one event ``{seq, t_ns, kind, payload}``
a line. Each event is fsynced before it is handed to watchers, so anything a
controller has seen survives an agent crash. Seq numbers are per run,
gap-free, from 1.

Watchers block on ``wait_after(seq)``; finished runs are read from disk.
Only the newest events stay in memory, so a soak of any length costs the agent
the same memory; a watcher that resumes from further back reads the file.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.clock import now_ns

EVENT_KINDS = ("state", "phase", "progress", "window", "sample", "log", "result")
MEMORY_EVENTS = 2048  # the tail live watchers read from memory (~10 min of a soak)


def read_events(path: Path, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """Events with seq > after_seq (at most ``limit``). A torn last line (crash
    mid-write, or a line being written now) ends the read."""
    out: list[dict[str, Any]] = []
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        return out
    with f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                break  # only the last line can be torn; nothing valid follows it
            if isinstance(ev, dict) and ev.get("seq", 0) > after_seq:
                out.append(ev)
                if limit is not None and len(out) >= limit:
                    break
    return out


class Journal:
    def __init__(self, path: Path, memory_events: int = MEMORY_EVENTS) -> None:
        self.path = Path(path)
        if self.path.exists():
            self._drop_torn_tail()
        existing = read_events(self.path)
        self._events: collections.deque[dict[str, Any]] = collections.deque(
            existing[-memory_events:], maxlen=memory_events
        )
        self._last_seq = existing[-1]["seq"] if existing else 0
        self._file = open(self.path, "a", encoding="utf-8")
        self._cond = threading.Condition()
        self._closed = False
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

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
            self._file.write(json.dumps(ev, separators=(",", ":"), default=_jsonable) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            # only now may anyone see it
            self._events.append(ev)
            self._last_seq = ev["seq"]
            self._cond.notify_all()
        for fn in self._listeners:
            fn(ev)
        return ev

    def events_after(self, seq: int) -> list[dict[str, Any]]:
        with self._cond:
            got = self._from_memory(seq)
        return got if got is not None else read_events(self.path, seq, self._events.maxlen)

    def wait_after(self, seq: int, timeout: float) -> list[dict[str, Any]]:
        """Events past ``seq`` (a batch: call again from the last one seen);
        blocks up to ``timeout`` while there are none and the journal is open."""
        with self._cond:
            if self._last_seq <= seq and not self._closed:
                self._cond.wait(timeout)
            got = self._from_memory(seq)
        # older than the memory tail: the file has it (every event is flushed
        # before it is in memory), read without holding up appends
        return got if got is not None else read_events(self.path, seq, self._events.maxlen)

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

    def _drop_torn_tail(self) -> None:
        """Cut a half-written last line so appends start on a clean line."""
        with open(self.path, "rb+") as f:
            data = f.read()
            good = 0
            for line in data.splitlines(keepends=True):
                try:
                    json.loads(line)
                except ValueError:
                    break
                if not line.endswith(b"\n"):
                    break
                good += len(line)
            if good != len(data):
                f.truncate(good)


def _jsonable(obj: Any) -> Any:
    # numpy scalars and paths sneak into payloads; keep the journal writable
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
