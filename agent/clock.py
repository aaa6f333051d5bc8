"""The one clock. Every timestamp on a board is CLOCK_MONOTONIC in ns, shared by
all processes (agent, workers, meter readers), so series line up without any
offset bookkeeping. Wall-clock time is only recorded once per run."""

from __future__ import annotations

import time


def now_ns() -> int:
    return time.monotonic_ns()


def wall_unix() -> float:
    return time.time()


def seconds_since(t0_ns: int, t_ns: int) -> float:
    """Seconds from run start, the unit results use."""
    return (t_ns - t0_ns) / 1e9
