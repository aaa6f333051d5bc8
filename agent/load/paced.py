"""The measured phase under a load pattern: frames arrive on a schedule
(``agent/load/schedule.py``), the loop idles on the clock until each
arrival (``agent/load/pacer.py``), runs it, and counts what the product
would see: late frames (done after their deadline), dropped frames (a camera
keeps only the newest frame that arrived while the model was busy) and the
queueing delay (``--late queue``: every frame runs, in order).

Latency counts from the scheduled arrival, not from when the inference
happened to start (no coordinated omission). Rows still go to
``iterations.npy`` (start, end, phase) so power and telemetry align as for
any run; each frame also goes to ``arrivals.npy`` (arrival, start, end,
burst; dropped frames have start = end = -1).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from agent.load.loop import Loop, window
from agent.load.pacer import wait_until
from agent.load.schedule import ASAP, Schedule
from agent.messages import Progress
from agent.messages import Schedule as ScheduleMsg
from agent.rundir import MEASURED, IterationLog
from agent.spec import LoadSpec

FRAMES_CHUNK = 4096
PROGRESS_S = 0.5


class _Frames:
    """Frame rows buffered for ``arrivals.npy``, plus the counts windows need."""

    def __init__(self, log: IterationLog | None, deadline_ns: int | None) -> None:
        self.log = log
        self.deadline = deadline_ns
        self.buf = np.empty((FRAMES_CHUNK, 4), dtype=np.int64)
        self.i = 0
        self.frames = self.late = self.dropped = 0
        self.w_frames = self.w_late = self.w_dropped = 0

    def add(self, a: int, t0: int, t1: int, burst: int) -> bool:
        """One frame; True when it missed (late or dropped)."""
        row = self.buf[self.i]
        row[0], row[1], row[2], row[3] = a, t0, t1, burst
        self.i += 1
        if self.i == FRAMES_CHUNK:
            self.flush()
        self.frames += 1
        self.w_frames += 1
        if t0 < 0:
            self.dropped += 1
            self.w_dropped += 1
            return True
        if self.deadline is not None and t1 - a > self.deadline:
            self.late += 1
            self.w_late += 1
            return True
        return False

    def flush(self) -> None:
        if self.log is not None and self.i:
            self.log.append(self.buf[: self.i])
        self.i = 0

    def window_counts(self) -> dict[str, Any]:
        f, late, dropped = self.w_frames, self.w_late, self.w_dropped
        self.w_frames = self.w_late = self.w_dropped = 0
        return {
            "frames": f,
            "late": late,
            "dropped": dropped,
            "miss_rate": (late + dropped) / f if f else None,
        }


def measure_paced(
    loop: Loop,
    load: LoadSpec,
    frames_log: IterationLog | None,
    duration_s: float,
    min_iterations: int,
    window_s: float | None = None,
) -> dict[str, Any]:
    """The measured phase under ``load``; returns {iterations, start_ns,
    end_ns, latencies_ns (from arrival), frames, late, dropped, max_consecutive_misses}.
    Frames arriving before ``duration_s`` run; the phase goes on past it only
    while fewer than ``min_iterations`` completed."""

    fn, clock, buf, send = loop.fn, loop.clock, loop.buf, loop.send
    buf[:, 2] = MEASURED
    lat = loop.latencies
    fr = _Frames(frames_log, load.deadline_ns)
    start = clock()
    sched = Schedule(load, start)
    # the schedule's origin and bursts, journaled (as a log event): what a
    # meter trace or a test aligns with
    send(ScheduleMsg(start, start, sched.burst_starts(start + int(duration_s * 1e9))[:1000]).to_dict())
    drop = load.late_policy == "drop" and not sched.closed
    end = start + int(duration_s * 1e9)
    prog_ns = int(PROGRESS_S * 1e9)
    win_ns = int(window_s * 1e9) if window_s else 0
    next_progress = start + prog_ns
    next_window = start + win_ns if win_ns else None
    win_t0, win_i0 = start, 0
    i = n_total = 0  # rows buffered, rows drained
    run_misses = max_run = 0
    t1 = start
    arrivals = np.empty(len(buf), dtype=np.int64)  # the arrival of each buffered row

    def drain() -> None:
        nonlocal i, n_total
        if i:
            lat.extend(buf[:i, 1] - arrivals[:i])
            loop.flush(i)
            n_total += i
            i = 0

    def checks(now: int) -> None:
        """Window and progress messages: at most every 0.5 s, in idle or after a frame."""
        nonlocal next_progress, next_window, win_t0, win_i0
        drain()
        if next_window is not None and now >= next_window:
            send(replace(window(win_t0, now, lat.view(win_i0)), **fr.window_counts()).to_dict())
            win_t0, win_i0 = now, lat.n
            while next_window <= now:
                next_window += win_ns
        if now >= next_progress:
            el = (now - start) / 1e9
            ips = n_total / el if el > 0 else 0.0
            send(Progress(now, n_total, el, duration_s, ips, fr.frames, fr.late, fr.dropped).to_dict())
            next_progress = now + prog_ns

    def check_at() -> int:
        return min(next_progress, next_window or next_progress)

    while True:
        now = clock()
        a, b = sched.pop(now)
        if a == ASAP:
            a = now
        if a >= end and n_total + i >= min_iterations:
            break
        # idle until the arrival: sleep on the clock, waking for check points
        while now < a:
            due = check_at()
            now = wait_until(min(a, due), clock)
            if now >= due:
                checks(now)
        if drop:
            # frames that arrived while the last one ran: the camera keeps the newest
            # (a frame due at or after the end is not part of the run)
            while (p := sched.peek()) <= now and (p < end or n_total + i < min_iterations):
                fr.add(a, -1, -1, b)
                run_misses += 1
                max_run = max(max_run, run_misses)
                a, b = sched.pop()
        t0 = clock()
        fn()
        t1 = clock()
        buf[i, 0] = t0
        buf[i, 1] = t1
        arrivals[i] = a
        i += 1
        if fr.add(a, t0, t1, b):
            run_misses += 1
            max_run = max(max_run, run_misses)
        else:
            run_misses = 0
        if i == len(buf) or t1 >= check_at():
            checks(t1)
    drain()
    fr.flush()
    if next_window is not None and (lat.n > win_i0 or fr.w_frames):
        w_end = max(end, t1)
        send(replace(window(win_t0, w_end, lat.view(win_i0)), **fr.window_counts()).to_dict())
    return {
        "iterations": n_total,
        "start_ns": start,
        # the schedule's span: a run that idles at its end still spans the duration
        "end_ns": max(end, t1),
        "latencies_ns": lat.view(),
        "frames": fr.frames,
        "late": fr.late,
        "dropped": fr.dropped,
        "max_consecutive_misses": max_run,
        "burst_starts_ns": sched.burst_starts(max(end, t1)),
    }
