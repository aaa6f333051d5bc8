"""Arrival times of a load pattern, computed from the pattern alone (the
load generator stays apart from the system under test, as MLPerf LoadGen
keeps it): a fixed rate, seeded Poisson arrivals, and idle->burst duty
cycles. Nothing here looks at when an inference finished, except the one
case that has no arrival times to compute: back-to-back inferences inside a
burst (``--burst`` without a rate), which by definition start when the
previous one ends.

Times are int64 ns on the monotonic clock, from ``origin_ns`` (the start of
the measured phase). A duty cycle starts with its idle part, so the first
burst is a burst "after idle" like every other one.
"""

from __future__ import annotations

import numpy as np

from agent.spec import LoadSpec

CHUNK = 4096  # arrivals generated at a time: bounded memory for any run length
ASAP = -1  # the arrival of a back-to-back inference: whenever the previous one ends


class Schedule:
    """The frames of a run, in arrival order: ``peek()`` / ``pop()`` give
    ``(arrival_ns, burst)``; ``burst`` is -1 outside a duty cycle. A back-to-back
    burst gives ``ASAP`` for every frame but its first; ``pop(now_ns)`` needs the
    clock only there (a time burst ends by time, a count burst's idle starts
    when its last inference ends)."""

    def __init__(self, load: LoadSpec, origin_ns: int) -> None:
        self.load = load
        self.origin = int(origin_ns)
        self.hz = load.rate_hz or load.poisson_hz
        self.closed = self.hz is None  # back to back inside bursts
        self._buf = np.empty(0, dtype=np.int64)
        self._burst = np.empty(0, dtype=np.int64)
        self._i = 0
        self._j = 0  # index of the next arrival to generate
        self._tau_ns = 0.0  # Poisson: the active time reached so far
        self._rng = np.random.default_rng(load.seed)
        off = load.burst_off_s
        self.off_ns = int(round(off * 1e9)) if off is not None else None
        self.on_ns = int(round(load.burst_on_s * 1e9)) if load.burst_on_s is not None else None
        self.per_burst = self._per_burst()
        # back-to-back bursts: state of the burst in progress
        self._c = -1
        self._c_start = 0
        self._c_done = 0
        self._next_start = self.origin + (self.off_ns or 0)

    def _per_burst(self) -> int | None:
        """Inferences per burst when fixed: a count burst, or a time burst at a fixed rate."""
        if self.load.burst_on_n is not None:
            return self.load.burst_on_n
        if self.on_ns is not None and self.load.rate_hz:
            # frames whose arrival falls inside the burst: k / rate < on
            return max(1, int(np.ceil(self.on_ns * self.load.rate_hz / 1e9 - 1e-9)))
        return None

    @property
    def cycle_ns(self) -> int | None:
        """One idle + burst period (fixed-rate and time bursts)."""
        if self.off_ns is None:
            return None
        if self.on_ns is not None:
            return self.off_ns + self.on_ns
        if self.load.rate_hz:
            return self.off_ns + int(round(self.per_burst * 1e9 / self.load.rate_hz))
        return None  # a back-to-back count burst: its length is the model's

    def burst_starts(self, end_ns: int) -> list[int]:
        """Scheduled burst starts before ``end_ns`` (none for a back-to-back count burst)."""
        cyc = self.cycle_ns
        if cyc is None:
            return []
        return list(range(self.origin + self.off_ns, int(end_ns), cyc))

    # -- open loop: arrival times known up front --------------------------------
    def _generate(self) -> None:
        j = np.arange(self._j, self._j + CHUNK, dtype=np.int64)
        self._j += CHUNK
        if self.load.rate_hz:
            period = 1e9 / self.load.rate_hz
            if self.per_burst is not None:
                c, k = j // self.per_burst, j % self.per_burst
                t = c * self.cycle_ns + self.off_ns + np.round(k * period).astype(np.int64)
                burst = c
            else:
                t = np.round(j * period).astype(np.int64)
                burst = np.full(CHUNK, -1, dtype=np.int64)
        else:  # Poisson: exponential gaps in active time (time inside bursts)
            gaps = self._rng.exponential(1e9 / self.load.poisson_hz, CHUNK)
            tau = self._tau_ns + np.cumsum(gaps)
            self._tau_ns = float(tau[-1])
            if self.on_ns is not None:
                c = np.floor(tau / self.on_ns).astype(np.int64)
                t = np.round(c * (self.on_ns + self.off_ns) + self.off_ns + (tau - c * self.on_ns)).astype(
                    np.int64
                )
                burst = c
            else:
                t = np.round(tau).astype(np.int64)
                burst = np.full(CHUNK, -1, dtype=np.int64)
        self._buf = self.origin + t
        self._burst = burst
        self._i = 0

    def peek(self) -> int:
        """The next arrival (open loop only)."""
        if self._i >= len(self._buf):
            self._generate()
        return int(self._buf[self._i])

    def pop(self, now_ns: int = 0) -> tuple[int, int]:
        if self.closed:
            return self._pop_closed(now_ns)
        a = self.peek()
        b = int(self._burst[self._i])
        self._i += 1
        return a, b

    # -- closed loop inside bursts ------------------------------------------------
    def _pop_closed(self, now_ns: int) -> tuple[int, int]:
        n = self.load.burst_on_n
        in_burst = self._c >= 0 and (
            (n is not None and self._c_done < n)
            or (self.on_ns is not None and now_ns < self._c_start + self.on_ns)
        )
        if in_burst:
            self._c_done += 1
            return ASAP, self._c
        if self._c >= 0:  # the burst is over: schedule the next
            if n is not None:
                self._next_start = now_ns + self.off_ns  # idle after the last inference ends
            else:
                self._next_start = self._c_start + self.on_ns + self.off_ns
        self._c += 1
        self._c_start = self._next_start
        self._c_done = 1
        return self._c_start, self._c
