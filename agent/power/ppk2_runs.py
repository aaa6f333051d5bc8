"""Sizing PPK2 sample loss in whole runs of 64 from host receive times.

The PPK2's 6-bit counter names a lost run only modulo 64: a counter jump of
``r`` is ``r + 64 k`` lost samples for some k >= 0, and 64 lost samples leave
no trace. Nordic's own app (pc-nrfconnect-ppk, serialDevice.ts) counts the
counter alone. The only other witness is the host clock: each read's newest
sample against the time it arrived (the *lag*). Lost samples raise the lag
for good by ``64 k`` sample periods; host load raises it for a while, by any
amount. So the lag is never read from one chunk: it is the lowest lag over a
window of reads, compared with the lowest lag over the seconds before, and
the answer comes with the bound of how far such a window's lowest lag strays
on this host right now (``LagFloor.stray``). Under load that bound grows,
and the sizes it gives are stated as estimates with a wider uncertainty;
a run of 64 with no counter trace is named only when the timing pins it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

WRAP = 64  # the counter's modulus
LAG_WINDOW_NS = 2_000_000_000  # the lowest lag is taken over this much host time
SETTLE_READS = 8  # reads before the lowest lag is trusted (the first ones after start vary)
BLOCK_NS = 100_000_000  # a stray sample: the lowest lag over this long...
BLOCK_READS = 6  # ...and at least this many reads, above the 2 s lowest
HISTORY_BLOCKS = 50  # the stray is judged over the last ~5 s of blocks
MIN_BLOCKS = 3  # blocks before the stray is known
MIN_BLOCKS_SILENT = 5  # before a lost run with no counter trace may be named: ~0.5 s of jitter seen
MARGIN_SAMPLES = 3  # rounding of sample times and a little crystal drift


class _MinWindow:
    """The minimum of (t, value) pairs over a sliding window of t, never empty once fed."""

    def __init__(self, span_ns: int) -> None:
        self.span_ns = span_ns
        self._q: deque[tuple[int, int]] = deque()

    def push(self, t: int, v: int) -> None:
        while self._q and self._q[-1][1] >= v:
            self._q.pop()
        self._q.append((t, v))
        while len(self._q) > 1 and self._q[0][0] < t - self.span_ns:
            self._q.popleft()

    def min(self) -> int | None:
        return self._q[0][1] if self._q else None


class LagFloor:
    """The lowest receive lag over the last seconds (``base``), and how far the
    lowest lag over a window of reads has strayed above it lately (``stray``):
    tens of microseconds on a quiet host, up to milliseconds for short windows
    on a loaded one; the longer the window, the closer its lowest lag sits to
    the floor, which is why a run of 64 is named from long windows only."""

    def __init__(self) -> None:
        self._lag = _MinWindow(LAG_WINDOW_NS)
        self.reads = 0
        self._blk: list[int] | None = None  # [t0, reads, lowest lag]
        self._blocks: deque[tuple[int, int]] = deque(maxlen=HISTORY_BLOCKS)  # (duration, excess)

    def base(self) -> int | None:
        return self._lag.min() if self.reads >= SETTLE_READS else None

    def push(self, t_rx: int, lag: int) -> None:
        self._lag.push(t_rx, lag)
        self.reads += 1
        b = self._blk
        if b is None:
            self._blk = b = [t_rx, 0, lag]
        b[1] += 1
        b[2] = min(b[2], lag)
        if t_rx - b[0] >= BLOCK_NS and b[1] >= BLOCK_READS:
            self._blocks.append((t_rx - b[0], b[2] - (self._lag.min() or b[2])))
            self._blk = None

    def stray(self, span_ns: int, min_blocks: int = MIN_BLOCKS) -> int | None:
        """The most the lowest lag over ``span_ns`` of reads sat above the base
        in the recent history; None until ``min_blocks`` blocks were seen."""
        mins = self._window_mins(span_ns, min_blocks)
        return max(mins) if mins else None

    def typical(self, span_ns: int, min_blocks: int = MIN_BLOCKS) -> int:
        """How far it usually sat above (the median): a point estimate's offset."""
        mins = sorted(self._window_mins(span_ns, min_blocks))
        return mins[len(mins) // 2] if mins else 0

    def _window_mins(self, span_ns: int, min_blocks: int) -> list[int]:
        blocks = list(self._blocks)
        if len(blocks) < min_blocks:
            return []
        mean = sum(d for d, _ in blocks) / len(blocks)
        # at least min_blocks windows to judge by (shorter windows stray more:
        # a short history errs wide)
        # and windows a block shorter than the span (a span starts anywhere,
        # blocks only at their own boundaries)
        n = min(len(blocks) - min_blocks + 1, max(1, round(span_ns / mean) - 1))
        ex = [e for _, e in blocks]
        return [min(ex[i : i + n]) for i in range(len(ex) - n + 1)]


@dataclass
class Sizing:
    runs: int  # whole runs of 64 the lag adds to the counter's count
    uncertainty: int | None  # samples either side the truth may lie; None: timing could not bound it
    ambiguous: bool  # more than one count of runs fits the timing


def size_runs(
    excess_ns: list[int],
    stray_ns: int | None,
    period_ns: int,
    counter_gap: bool,
    last: bool = False,
    typical_ns: int | None = None,
) -> Sizing:
    """Runs of 64 hidden in a gap, from the lags (above the base before it) of
    the reads after it, and ``stray_ns``: how far the lowest lag of that many
    reads sits above the floor on this host lately.

    A lag is never below the floor, so the lowest lag after the gap, ``e``,
    overstates the lost time by between 0 and the stray; the base before it
    is such a lowest lag too, and may understate it by as much: the truth
    lies in [e - stray, e + stray] (plus a margin). The reads
    are cut in two: lowest lags that disagree widen the low side. ``last``:
    no more reads will come; if the lag was still moving (a host catching up
    on a backlog, or falling behind), the timing bounds the loss from above
    only, and the counter's count is the low end. ``typical_ns``: how far
    such a lowest lag usually sits above the floor (the median; default half
    the stray), the point estimate's offset. ``counter_gap``: the counter
    showed the gap (some k >= 0 is chosen); else only a step the timing pins
    to one k >= 1 is named (a host that got slower is not a lost run)."""
    w = WRAP * period_ns
    if stray_ns is None or len(excess_ns) < 4:
        # nothing to bound it with: a counter gap keeps the counter's count
        return Sizing(0, None, True) if counter_gap else Sizing(0, 0, False)
    half = len(excess_ns) // 2
    mins = (min(excess_ns[:half]), min(excess_ns[half:]))
    e = min(mins)
    margin = MARGIN_SAMPLES * period_ns + stray_ns // 4  # rounding, drift, the base's own error
    low = stray_ns + (max(mins) - e) + margin
    lo = max(0, math.ceil((e - low) / w))
    # the base is itself a window's lowest lag: it may sit above the lag the
    # reads after the gap reach by as much as such a window strays, so e may
    # understate the loss by that much too
    hi = max(0, math.floor((e + margin + stray_ns) / w))
    if not counter_gap:
        if 2 * low >= w or hi != lo or lo < 1:
            return Sizing(0, 0, False)
        return Sizing(lo, WRAP, False)
    # halves that disagree by more than the stray: a host catching up on a
    # backlog (falling) or falling behind (rising); either way the timing
    # bounds the loss from above only
    if last and abs(mins[1] - mins[0]) > stray_ns:
        lo = 0
    offset = stray_ns / 2 if typical_ns is None else typical_ns
    k = max(0, round((e - offset) / w))
    if hi < lo:  # the bound fits no count: the nearest, one run either way
        return Sizing(k, WRAP, True)
    k = min(max(k, lo), hi)
    return Sizing(k, WRAP * max(k - lo, hi - k), hi > lo)
