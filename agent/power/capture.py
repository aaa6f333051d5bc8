"""Continuous meter capture for one run.

A reader thread pulls blocks from the meter and appends them to
``run_dir/power.bin`` (SAMPLE_DTYPE records, 16 bytes a sample, meter clock).
At stop it fits the meter clock to CLOCK_MONOTONIC per segment and writes
``power.json`` (layout, counts, gaps, fits); ``agent/rundir.py`` reads them back.

An unplugged meter is not a failed run: the gap is recorded, the capture is
marked partial and the reader keeps trying to reopen the port; a reopened
meter starts a new segment (its clock may have restarted).

A thread is enough: decoding is numpy per read, and the GIL is released while
the reader waits on the port (see bench/bench_power.py for the figures).
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any

import numpy as np

from agent import atomic
from agent.clock import now_ns
from agent.errors import BadInput
from agent.power import clockfit, losses
from agent.power.base import SAMPLE_DTYPE, Block, Meter, MeterGone, make_meter
from agent.rundir import POWER_BIN, POWER_JSON
from agent.spec import MeterSpec

SCHEMA = "edgebench.power/v1"
_STALL_NS = 1_000_000_000  # no samples for this long while the port stays open: a gap
_REOPEN_EVERY_S = 0.5
# After a small read, let data pile up briefly: one wakeup per few ms instead of
# one per USB packet keeps a 100 kS/s capture cheap. Reads stay far below the
# tty buffer (~4 KB per ms at 1 MS/s).
_SMALL_READ = 1000
_BATCH_WAIT_S = 0.004
# window(): the clock pairs this far before a window feed its live clock fit
_WINDOW_FIT_NS = 30_000_000_000


class _Segment:
    def __init__(self, first: int) -> None:
        self.first = first
        self.count = 0
        # one entry per read (8 bytes each): the meter time of its last sample,
        # the host receive time, and the segment's sample count after it
        self.pair_dev = array("q")
        self.pair_host = array("q")
        self.pair_n = array("q")
        self.dev_first: int | None = None
        self.dev_last: int | None = None


class Capture:
    def __init__(self, meter: MeterSpec, run_dir: Path, reconnect: bool = True) -> None:
        self.spec = meter
        self.run_dir = Path(run_dir)
        self.reconnect = reconnect
        self._meter: Meter | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._gaps: list[dict[str, Any]] = []
        self._sample_gaps: list[tuple[int, dict[str, Any]]] = []  # (segment, the meter's gap)
        self._samples = 0
        self._dropped = 0
        self._garbage = 0
        self._partial = False
        self._last_rx_ns: int | None = None
        self._last_current_a: float | None = None
        self._start_ns = 0
        self._stop_ns = 0
        self._info: dict[str, Any] = {}
        self._error: str | None = None
        self._summary: dict[str, Any] | None = None
        self._host_clock = False
        self._sample_period_ns: float | None = None

    @property
    def source(self) -> str:
        return f"{self.spec.kind}:{self.spec.port}"

    def start(self) -> None:
        """Open the meter (BadInput if the port or meter is wrong) and start reading."""
        meter = make_meter(self.spec)
        meter.open()
        try:
            meter.start()
        except MeterGone as exc:
            meter.close()
            raise BadInput(f"meter {self.source}: {exc}") from None
        self._meter = meter
        self._host_clock = meter.host_clock
        # a meter whose clock is its sample count (t_dev = index x period): the
        # whole capture's sample count can be checked against its span
        rate = meter.nominal_rate_hz if getattr(meter, "sample_clock", False) else None
        self._sample_period_ns = 1e9 / rate if rate else None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.run_dir / POWER_BIN, "wb")  # noqa: SIM115 - closed by stop()
        self._start_ns = now_ns()
        self._segments.append(_Segment(0))
        self._thread = threading.Thread(target=self._run, name="power-capture", daemon=True)
        self._thread.start()

    def live(self) -> dict[str, Any]:
        """Counters so far (for progress events and /metrics)."""
        with self._lock:
            return {
                "samples": self._samples,
                "dropped_samples": self._dropped,
                "partial": self._partial,
                "last_current_a": self._last_current_a,
            }

    # -- reader thread ---------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                meter = self._meter
                if meter is None:
                    if not self._reopen():
                        break
                    continue
                try:
                    blk = meter.read()
                except MeterGone as exc:
                    self._lost(str(exc))
                    continue
                # (an empty block may come from bytes a meter holds back: wait too)
                # the read's own receive time: decoding a read took ~0.5 ms and
                # made every clock pair that much late
                n = self._store(blk, blk.t_rx_ns if blk.t_rx_ns is not None else now_ns())
                if n < _SMALL_READ and not self._host_clock:
                    self._stop.wait(_BATCH_WAIT_S)
        except Exception as exc:  # a bug here must not take the run down: record it
            with self._lock:
                self._partial = True
                self._error = f"{type(exc).__name__}: {exc}"
                self._gaps.append({"start_ns": now_ns(), "end_ns": None, "reason": self._error})

    def _store(self, blk: Block, t_rx: int | None) -> int:
        """Append one block to power.bin, with its clock pair unless there is
        no receive time (``t_rx`` None); its sample count."""
        n = len(blk)
        with self._lock:
            self._dropped += blk.dropped
            self._garbage += blk.garbage
            if not n:
                return 0
            seg = self._segments[-1]
            if (
                t_rx is not None
                and self._last_rx_ns is not None
                and t_rx - self._last_rx_ns > _STALL_NS
                and seg.count
            ):
                self._gaps.append(
                    {"start_ns": self._last_rx_ns, "end_ns": t_rx, "reason": "no data from meter"}
                )
            self._file.write(blk.to_records().tobytes())
            seg.count += n
            if seg.dev_first is None:
                seg.dev_first = int(blk.t_dev_ns[0])
            seg.dev_last = int(blk.t_dev_ns[-1])
            self._samples += n
            self._last_current_a = float(blk.current_a[-1])
            if t_rx is not None:
                seg.pair_dev.append(seg.dev_last)
                seg.pair_host.append(t_rx)
                seg.pair_n.append(seg.count)
                self._last_rx_ns = t_rx
        return n

    def _lost(self, reason: str) -> None:
        with self._lock:
            self._partial = True
            self._gaps.append(
                {
                    "start_ns": self._last_rx_ns or self._start_ns,
                    "end_ns": None,
                    "reason": f"meter lost: {reason}",
                }
            )
            self._info = self._meter_info()
            self._take_sample_gaps()
        if self._meter is not None:
            self._meter.close()
        self._meter = None

    def _take_sample_gaps(self) -> None:
        """The lost-sample runs of the meter now in use (before it is dropped)."""
        try:
            gaps = self._meter.sample_gaps() if self._meter is not None else []
        except Exception:  # best effort, as info: never lose the capture for it
            gaps = []
        self._sample_gaps += [(len(self._segments) - 1, g) for g in gaps]

    def _reopen(self) -> bool:
        """Try to reopen an unplugged meter until stop. False: stopped."""
        if not self.reconnect:
            self._stop.wait()
            return False
        while not self._stop.wait(_REOPEN_EVERY_S):
            try:
                m = make_meter(self.spec)
                m.open()
                m.start()
            except (BadInput, MeterGone, OSError):
                continue
            with self._lock:
                self._gaps[-1]["end_ns"] = now_ns()
                self._segments.append(_Segment(self._samples))
                self._last_rx_ns = None
            self._meter = m
            return True
        return False

    def window(
        self, t0_ns: int, t1_ns: int, wait_s: float = 0.25
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The samples captured so far that fall in [t0_ns, t1_ns] on the agent
        clock (plus one either side, for the edges), one ``(t_ns, current_a,
        bus_v)`` per segment (bus_v NaN without a bus voltage), for a soak
        window while the capture runs. Samples still on their way from the
        meter are waited for, up to ``wait_s``, unless the meter is gone.
        Meter times are mapped by a clock fit over the reads of the last
        ``_WINDOW_FIT_NS`` (the stop-time fit uses all of them); only the
        window's own samples are read back from power.bin."""
        deadline = now_ns() + int(wait_s * 1e9)
        while True:
            parts, live = self._window_pairs(t0_ns, t1_ns)
            if not parts:
                return []
            fits = [
                clockfit.identity() if self._host_clock else clockfit.fit(dev, host)
                for _, dev, host, _ in parts
            ]
            newest = int(fits[-1].apply(parts[-1][1][-1:])[0])
            if newest >= t1_ns or not live or now_ns() >= deadline:
                break
            self._stop.wait(0.005)
        out = []
        for (first, dev, _, n_after), fit in zip(parts, fits, strict=True):
            # host -> meter time: the fit's inverse; from the read before the one
            # holding the window start through the one after the window end
            d0, d1 = (np.array([t0_ns, t1_ns]) - fit.host0_ns - fit.intercept_ns) / fit.slope + fit.dev0_ns
            k0 = max(int(np.searchsorted(dev, d0, side="left")) - 1, 0)
            k1 = min(int(np.searchsorted(dev, d1, side="left")) + 1, dev.shape[0])
            a, b = int(n_after[k0]), int(n_after[k1])
            if b <= a:
                continue
            rec = np.fromfile(
                self.run_dir / POWER_BIN,
                dtype=SAMPLE_DTYPE,
                count=b - a,
                offset=(first + a) * SAMPLE_DTYPE.itemsize,
            )
            t = fit.apply(rec["t_dev_ns"])
            inside = np.flatnonzero((t >= t0_ns) & (t <= t1_ns))
            if not inside.shape[0]:
                continue
            sl = slice(max(int(inside[0]) - 1, 0), min(int(inside[-1]) + 2, t.shape[0]))
            out.append((t[sl], rec["current_a"][sl].astype(np.float64), rec["bus_v"][sl].astype(np.float64)))
        return out

    def _window_pairs(self, t0_ns: int, t1_ns: int) -> tuple[list[tuple[int, Any, Any, Any]], bool]:
        """For window(): per segment that may hold samples of the window, its
        first record and copies of its clock pairs near the window (meter time,
        host time, and the segment's sample count before each read: one more
        entry); and whether the meter is still delivering. Flushes power.bin."""
        parts = []
        with self._lock:
            if self._thread is None or self._file.closed:
                return [], False
            self._file.flush()
            for seg in self._segments:
                if not seg.count or seg.pair_host[-1] < t0_ns:
                    continue
                lo = bisect_left(seg.pair_host, t0_ns - _WINDOW_FIT_NS)
                hi = bisect_right(seg.pair_host, t1_ns + _STALL_NS)
                if hi <= lo:
                    continue
                # copies, not views: the reader thread appends to these arrays
                n_after = array("q", [seg.pair_n[lo - 1] if lo else 0]) + seg.pair_n[lo:hi]
                parts.append(
                    (
                        seg.first,
                        np.array(seg.pair_dev[lo:hi], dtype=np.int64),
                        np.array(seg.pair_host[lo:hi], dtype=np.int64),
                        np.array(n_after, dtype=np.int64),
                    )
                )
            live = self._meter is not None and self._thread.is_alive() and not self._stop.is_set()
        return parts, live

    def _meter_info(self) -> dict[str, Any]:
        try:
            return self._meter.info() if self._meter is not None else self._info
        except Exception:  # info is best effort; never lose the capture for it
            return self._info

    # -- stop ---------------------------------------------------------------------
    def stop(self) -> dict[str, Any]:
        """Stop reading, fit clocks, write power.json; returns the capture summary."""
        if self._summary is not None:
            return self._summary
        if self._thread is None:
            raise RuntimeError("capture was never started")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self._stop_ns = now_ns()
        if self._meter is not None:
            # samples the meter held back to settle a gap (ppk2); their last one
            # arrived at the last read, not now: no clock pair for them
            self._store(self._meter.flush(), None)
            try:
                self._meter.stop()
            except MeterGone:
                pass
            self._info = self._meter_info()
            self._take_sample_gaps()
            self._meter.close()
            self._meter = None
        self._file.close()
        for g in self._gaps:
            if g["end_ns"] is None:
                g["end_ns"] = self._stop_ns
        segs = []
        span_ns = 0
        seg_fits: dict[int, clockfit.ClockFit] = {}
        for i, s in enumerate(self._segments):
            if not s.count:
                continue
            if self._host_clock:
                fit = clockfit.identity()
            else:
                fit = clockfit.fit(np.asarray(s.pair_dev), np.asarray(s.pair_host))
            seg_fits[i] = fit
            segs.append({"first": s.first, "count": s.count, "clock_fit": fit.to_dict()})
            span_ns += (s.dev_last or 0) - (s.dev_first or 0)
        sample_gaps = losses.on_agent_clock(self._sample_gaps, seg_fits)
        rate = None
        if span_ns > 0:
            n_intervals = sum(max(0, s.count - 1) for s in self._segments) + self._dropped
            rate = n_intervals / (span_ns / 1e9)
        fits = [s["clock_fit"] for s in segs]
        summary: dict[str, Any] = {
            "source": self.source,
            "sample_rate_hz": rate,
            "samples": self._samples,
            "dropped_samples": self._dropped,
            **losses.bounds(sample_gaps),
            "device_span_samples": losses.span_samples(
                [(g.dev_first, g.dev_last) for g in self._segments if g.count], self._sample_period_ns
            ),
            "sample_gaps": sample_gaps[: losses.MAX_LISTED],
            "garbage": self._garbage,
            "partial": self._partial,
            "gaps": self._gaps,
            "clock_fit": clockfit.summary(fits, self._host_clock),
        }
        doc = {
            "schema": SCHEMA,
            **summary,
            "kind": self.spec.kind,
            "port": self.spec.port,
            "options": dict(self.spec.options or {}),
            "dtype": [[name, SAMPLE_DTYPE.fields[name][0].str] for name in SAMPLE_DTYPE.names],
            "host_clock": self._host_clock,
            "start_ns": self._start_ns,
            "stop_ns": self._stop_ns,
            "segments": segs,
            "meter": self._info,
            "error": self._error,
        }
        atomic.write_json(self.run_dir / POWER_JSON, doc, indent=1, default=float)
        self._summary = summary
        return summary
