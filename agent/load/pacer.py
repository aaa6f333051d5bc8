"""Waiting on the monotonic clock until an arrival: real idle, not a spin.

``time.sleep`` wakes late by the kernel's timer slack plus scheduling
(about 50-100 us on an idle Linux box, ms on a loaded one), so the pacer
sleeps until ``SPIN_NS`` (0.2 ms) before the target and spins the rest. The spin is
the only CPU the pacer burns; bench/bench_load.py measures both sides of
the trade (start jitter at 1,000 FPS, CPU per second at 30 FPS).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# sleep until this close to the target, then spin: it covers a sleep's usual
# overshoot here (~0.1 ms) and costs at most 30 x 0.2 ms = 0.6 % of a core at
# 30 FPS; bench/results/load.json measures both sides
SPIN_NS = 200_000


def wait_until(target_ns: int, clock: Callable[[], int] = time.monotonic_ns, spin_ns: int = SPIN_NS) -> int:
    """Return at ``target_ns`` or just after it; the clock reading on return.
    Bounded: it never waits past ``target_ns`` plus one sleep's overshoot."""
    now = clock()
    while now < target_ns:
        left = target_ns - now
        if left > spin_ns:
            time.sleep((left - spin_ns) / 1e9)
        now = clock()
    return now
