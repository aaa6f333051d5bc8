"""The timed loop: warm-up by time, then a measured phase that ends when both
the duration and the minimum iteration count are met (MLPerf-style minimums).

The hot loop does two clock reads, two stores into a preallocated int64 buffer
and one compare per iteration; everything else (progress, soak windows, disk
flushes) happens at check points at most every 0.5 s or when the buffer fills.
Rows go to ``iterations.npy`` (int64 N x 3: start_ns, end_ns, phase) in chunks,
with the header rewritten at each flush so a killed run leaves a readable file;
``agent/rundir.py`` reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.messages import Progress, Window
from agent.rundir import MEASURED, WARMUP, IterationLog
from agent.stats import nearest_rank

CHUNK = 65536  # rows per flush: 1.5 MiB, ~65 s at 1 kHz
PROGRESS_S = 0.5  # progress messages at most 2 Hz


class LatencyStore:
    """Growable int64 array of measured latencies (ns)."""

    def __init__(self) -> None:
        self.buf = np.empty(CHUNK, dtype=np.int64)
        self.n = 0

    def extend(self, lat: np.ndarray) -> None:
        need = self.n + len(lat)
        if need > len(self.buf):
            grown = np.empty(max(need, 2 * len(self.buf)), dtype=np.int64)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown
        self.buf[self.n : need] = lat
        self.n = need

    def view(self, start: int = 0) -> np.ndarray:
        return self.buf[start : self.n]


class Loop:
    """Runs ``fn()`` repeatedly; owns the buffer, the log and the messages."""

    def __init__(
        self,
        fn: Callable[[], Any],
        log: IterationLog | None,
        send: Callable[[dict], None],
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.fn = fn
        self.log = log
        self.send = send
        self.clock = clock
        self.buf = np.zeros((CHUNK, 3), dtype=np.int64)
        self.latencies = LatencyStore()

    def record(self, t0: int, t1: int, phase: int) -> None:
        """One row outside the hot loop (the cold first inference)."""
        if self.log is not None:
            self.log.append(np.array([[t0, t1, phase]], dtype=np.int64))

    def warmup(self, seconds: float) -> int:
        """Run for ``seconds``; rows logged with phase 0. Returns iterations."""
        if seconds <= 0:
            return 0
        fn, clock, buf = self.fn, self.clock, self.buf
        buf[:, 2] = WARMUP
        end = clock() + int(seconds * 1e9)
        i = n = 0
        while True:
            t0 = clock()
            fn()
            t1 = clock()
            buf[i, 0] = t0
            buf[i, 1] = t1
            i += 1
            if i == CHUNK:
                self.flush(i)
                n += i
                i = 0
            if t1 >= end:
                break
        self.flush(i)
        return n + i

    def flush(self, i: int) -> None:
        """The first ``i`` buffered rows to the iteration log."""
        if self.log is not None and i:
            self.log.append(self.buf[:i])

    def measure(
        self,
        duration_s: float,
        min_iterations: int,
        window_s: float | None = None,
    ) -> dict:
        """The measured phase. Returns {iterations, start_ns, end_ns, latencies_ns}."""
        fn, clock, buf = self.fn, self.clock, self.buf
        buf[:, 2] = MEASURED
        lat = self.latencies
        start = clock()
        dur_ns = int(duration_s * 1e9)
        end = start + dur_ns
        prog_ns = int(PROGRESS_S * 1e9)
        win_ns = int(window_s * 1e9) if window_s else 0
        next_progress = start + prog_ns
        next_window = start + win_ns if win_ns else None
        win_t0, win_i0 = start, 0
        check = min(next_progress, end, next_window or end)
        n_total = 0  # rows completed before the current chunk
        limit = CHUNK  # drain when this many rows are buffered
        i = 0
        while True:
            t0 = clock()
            fn()
            t1 = clock()
            buf[i, 0] = t0
            buf[i, 1] = t1
            i += 1
            if i == limit or t1 >= check:
                # slow path (buffer full or a check point due): drain, then decide
                lat.extend(buf[:i, 1] - buf[:i, 0])
                self.flush(i)
                n_total += i
                i = 0
                if next_window is not None and t1 >= next_window:
                    self.send(window(win_t0, t1, lat.view(win_i0)).to_dict())
                    win_t0, win_i0 = t1, lat.n
                    while next_window <= t1:
                        next_window += win_ns
                if t1 >= next_progress:
                    el = (t1 - start) / 1e9
                    ips = n_total / el if el > 0 else 0.0
                    self.send(Progress(t1, n_total, el, duration_s, ips).to_dict())
                    next_progress = t1 + prog_ns
                if t1 >= end and n_total >= min_iterations:
                    break
                check = min(next_progress, next_window or next_progress)
                if t1 < end:
                    check = min(check, end)
                    limit = CHUNK
                else:  # duration met: stop exactly at the minimum iteration count
                    limit = min(CHUNK, min_iterations - n_total)
        n = n_total
        # the last (partial) window of a soak
        if next_window is not None and lat.n > win_i0:
            self.send(window(win_t0, t1, lat.view(win_i0)).to_dict())
        return {
            "iterations": n,
            # the phase start, so duration_s >= the requested duration exactly
            "start_ns": start,
            "end_ns": t1,
            "latencies_ns": lat.view(),
        }


def window(t0: int, t1: int, lat_ns: np.ndarray) -> Window:
    """A soak window's message from its span and its latencies (ns)."""
    s = np.sort(lat_ns) / 1e6
    span = (t1 - t0) / 1e9
    return Window(
        t_start_ns=int(t0),
        t_end_ns=int(t1),
        iterations=len(s),
        throughput_ips=len(s) / span if span > 0 else 0.0,
        p50_ms=nearest_rank(s, 50.0) if len(s) else None,
        p99_ms=nearest_rank(s, 99.0) if len(s) else None,
    )
