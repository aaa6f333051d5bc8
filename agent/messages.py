"""Worker -> agent messages, typed: what a run's worker process posts to the
agent over its pipe (``send(msg.to_dict())``) and what the agent's message
pump reads back (``parse(dict)``). The wire stays a plain dict with a
``type`` key (picklable, and what the journal stores); docs/internals.md lists
every message.

A bottom module (imports nothing of the agent's): the worker side (load/,
validate/, runs/worker.py) and the agent side (runs/execution.py) both use it
without tying those packages to each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Union


@dataclass
class Phase:
    """A phase change: load, warmup, measure, profile, done."""

    TYPE: ClassVar[str] = "phase"
    phase: str = ""
    t_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "phase": self.phase, "t_ns": self.t_ns}


@dataclass
class Progress:
    """At most 2 Hz. ``frames``/``late``/``dropped`` (a load pattern's counts so
    far) are on the wire only when ``frames`` is set."""

    TYPE: ClassVar[str] = "progress"
    t_ns: int | None = None
    iterations: int | None = None
    elapsed_s: float | None = None
    target_s: float | None = None  # None: no time target (validate runs each sample once)
    throughput_ips: float | None = None
    frames: int | None = None
    late: int | None = None
    dropped: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {
            "type": self.TYPE,
            "t_ns": self.t_ns,
            "iterations": self.iterations,
            "elapsed_s": self.elapsed_s,
            "target_s": self.target_s,
            "throughput_ips": self.throughput_ips,
        }
        if self.frames is not None:
            d.update(frames=self.frames, late=self.late, dropped=self.dropped)
        return d


@dataclass
class Window:
    """A soak window's figures. With a load pattern it also carries the
    window's ``frames``, ``late``, ``dropped`` and ``miss_rate`` (None when no
    frame arrived): on the wire only when ``frames`` is set."""

    TYPE: ClassVar[str] = "window"
    t_start_ns: int | None = None
    t_end_ns: int | None = None
    iterations: int | None = None
    throughput_ips: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    frames: int | None = None
    late: int | None = None
    dropped: int | None = None
    miss_rate: float | None = None

    def frame_counts(self) -> dict[str, Any]:
        """The load pattern's counts, {} for a back-to-back run."""
        if self.frames is None:
            return {}
        f = self
        return {"frames": f.frames, "late": f.late, "dropped": f.dropped, "miss_rate": f.miss_rate}

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "t_start_ns": self.t_start_ns,
            "t_end_ns": self.t_end_ns,
            "iterations": self.iterations,
            "throughput_ips": self.throughput_ips,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            **self.frame_counts(),
        }


@dataclass
class Schedule:
    """A load pattern's origin and its first 1000 burst starts (journaled as a
    log event: what a meter trace or a test aligns with)."""

    TYPE: ClassVar[str] = "schedule"
    t_ns: int | None = None
    origin_ns: int | None = None
    burst_starts_ns: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "t_ns": self.t_ns,
            "origin_ns": self.origin_ns,
            "burst_starts_ns": list(self.burst_starts_ns),
        }


@dataclass
class Result:
    """Once, at the end: the worker's part of the result document."""

    TYPE: ClassVar[str] = "result"
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "data": self.data}


@dataclass
class Error:
    """Instead of a result: ``code`` bad_input or run_failed, a one-line message."""

    TYPE: ClassVar[str] = "error"
    code: str = "run_failed"
    message: str = "run failed"
    t_ns: int | None = None  # set by the worker's entry, which catches what the task did not

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "code": self.code, "message": self.message}
        if self.t_ns is not None:
            d["t_ns"] = self.t_ns
        return d


# Union, not |: a runtime alias must evaluate on Python 3.10 too (it does; this keeps it plain)
Message = Union[Phase, Progress, Window, Schedule, Result, Error]  # noqa: UP007
TYPES: dict[str, type] = {c.TYPE: c for c in (Phase, Progress, Window, Schedule, Result, Error)}


def parse(msg: dict[str, Any]) -> Message | None:
    """The typed message, or None for a type this agent does not know. Every
    field has a default, so a message that lacks a key still parses (the
    pump must survive it); keys a field does not name are left out."""
    cls = TYPES.get(msg.get("type"))  # type: ignore[arg-type]
    if cls is None:
        return None
    return cls(**{f.name: msg[f.name] for f in fields(cls) if f.name in msg})
