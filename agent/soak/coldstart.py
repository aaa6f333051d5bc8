"""``--start-cold``: before a soak, wait at idle until the board's temperatures
stop falling, so the cold figure is really cold. Bounded: a board in a warm
room never reaches a "cold" it cannot reach, so the wait ends at ``max_s``.

"Stopped falling" means the hottest zone fell by less than ``tol_c`` over the
last ``settle_s`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent.clock import now_ns


def hottest_c(temps: dict[str, Any] | None) -> float | None:
    vals = [float(v) for v in (temps or {}).values() if isinstance(v, (int, float))]
    return max(vals) if vals else None


def wait_until_cool(
    read_temps: Callable[[], dict[str, float] | None],
    max_s: float = 600.0,
    settle_s: float = 30.0,
    interval_s: float = 1.0,
    tol_c: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    clock_ns: Callable[[], int] = now_ns,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Poll ``read_temps`` until the hottest zone has stopped falling.

    Returns ``{settled, waited_s, start_c, end_c, reason}``; ``settled`` is
    False when the bound was hit, no zone could be read, or ``should_stop``
    said so (a cancelled run).
    """
    t0 = clock_ns()
    history: list[tuple[float, float]] = []  # (seconds since t0, hottest °C)
    start_c: float | None = None
    misses = 0
    while True:
        t = (clock_ns() - t0) / 1e9
        c = hottest_c(read_temps())
        if c is None:
            # a sampler just started has no reading yet: give it a few polls
            misses += 1
            if misses < 3 and t < max_s:
                sleep(max(0.0, min(interval_s, max_s - t)))
                continue
            return {
                "settled": False,
                "waited_s": round(t, 3),
                "start_c": None,
                "end_c": None,
                "reason": "no temperature readable",
            }
        misses = 0
        if start_c is None:
            start_c = c
        history.append((t, c))
        # the reading settle_s ago (or the oldest) against now
        old = [h for h in history if h[0] <= t - settle_s]
        if old:
            history = history[history.index(old[-1]) :]
            if old[-1][1] - c < tol_c:
                return {
                    "settled": True,
                    "waited_s": round(t, 3),
                    "start_c": start_c,
                    "end_c": c,
                    "reason": f"hottest zone fell < {tol_c} °C in {settle_s:g} s",
                }
        if t >= max_s:
            return {
                "settled": False,
                "waited_s": round(t, 3),
                "start_c": start_c,
                "end_c": c,
                "reason": f"not settled within {max_s:g} s",
            }
        if should_stop is not None and should_stop():
            return {
                "settled": False,
                "waited_s": round(t, 3),
                "start_c": start_c,
                "end_c": c,
                "reason": "stopped",
            }
        sleep(max(0.0, min(interval_s, max_s - t)))


def wait_with_sampler(sampler: Any, max_s: float, **kw: Any) -> dict[str, Any]:
    """The same wait reading the run's telemetry sampler (``latest()``)."""

    def read() -> dict[str, float] | None:
        s = sampler.latest()
        return None if s is None else s.get("temps_c")

    return wait_until_cool(read, max_s=max_s, **kw)
