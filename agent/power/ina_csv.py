"""``ina-csv``: the line protocol of INA226/INA228 microcontroller streamers
(firmware/ina_streamer/). Each line is ``<t_us>,<current_mA>[,<bus_mV>]``;
``t_us`` is the streamer's own 32-bit microsecond counter and wraps every
~71.6 minutes. ``#`` lines and a header line are ignored; garbage and partial
lines are counted and skipped.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from agent.clock import now_ns
from agent.power.base import Block, Options, SerialMeter, empty_block, open_port, purge_input, read_available

WRAP = 1 << 32
_MAX_JUMP_US = 10_000_000  # a bigger step between two lines needs the next line to confirm it
_MAX_LINE = 128  # longer than any valid line: a stream without newlines is garbage
_HEADER = re.compile(rb"^\s*[A-Za-z_][\w ()/\[\]\-.]*(,\s*[A-Za-z_][\w ()/\[\]\-.]*){1,2}\s*$")


class InaCsvParser:
    """Incremental parser: feed bytes, get a Block. Keeps the partial line,
    the wrap offset and the sample period between calls."""

    def __init__(self, nominal_rate_hz: float | None = None) -> None:
        self._rest = b""
        # after an open or a purge the stream starts mid-line: what comes
        # before the first newline is a cut line, whose tail can even parse
        # ("12345,1500.0" cut to "5,1500.0": a sample at a wrong time)
        self._synced = False
        self._last_raw: int | None = None
        self._offset = 0  # multiples of 2^32 added by unwrapping
        self._period_us: float | None = 1e6 / nominal_rate_hz if nominal_rate_hz else None
        self._pending_t: list[int] = []  # t_us seen while the period is learned
        self.gaps: list[dict[str, Any]] = []  # runs of lost lines, on the streamer's clock
        self._last_t: int | None = None  # last unwrapped t_us handed out
        self.lines = 0
        self.garbage = 0
        self.comments = 0
        self.wraps = 0

    @property
    def period_us(self) -> float | None:
        return self._period_us

    def resync(self) -> None:
        """The stream restarts mid-line (port opened or purged): drop up to the next newline."""
        self._rest = b""
        self._synced = False

    def feed(self, data: bytes) -> Block:
        buf = self._rest + data
        if not self._synced:
            nl = buf.find(b"\n")
            if nl < 0:
                self._rest = b""  # still inside the cut line
                return self._finish([], [], [], 0)
            buf = buf[nl + 1 :]
            self._synced = True
        lines = buf.split(b"\n")
        self._rest = lines.pop()
        garbage = 0
        if len(self._rest) > _MAX_LINE:
            garbage += 1
            self._rest = b""
        ts: list[int] = []
        cur: list[float] = []
        bus: list[float] = []
        for ln in lines:
            if not ln or ln[0] == 35:  # '#'
                if ln:
                    self.comments += 1
                continue
            p = ln.split(b",")
            np_ = len(p)
            try:
                if np_ == 2:
                    t = int(p[0])
                    c = float(p[1])
                    b = float("nan")
                elif np_ == 3:
                    t = int(p[0])
                    c = float(p[1])
                    b = float(p[2])
                else:
                    raise ValueError
                if not 0 <= t < WRAP or c != c:
                    raise ValueError
            except ValueError:
                if ln.strip() == b"" or _HEADER.match(ln):
                    continue  # blank or header line: ignored, not garbage
                garbage += 1
                continue
            ts.append(t)
            cur.append(c)
            bus.append(b)
        return self._finish(ts, cur, bus, garbage)

    def _finish(self, ts: list[int], cur: list[float], bus: list[float], garbage: int) -> Block:
        raw = np.asarray(ts, dtype=np.int64)
        keep = np.ones(raw.shape[0], dtype=bool)
        # Unwrap: a drop of more than half the range is the 32-bit counter wrapping;
        # a small step back is a corrupt line that happened to parse.
        unwrapped = np.empty_like(raw)
        last = self._last_raw
        off = self._offset
        n = raw.shape[0]
        d = np.diff(raw)
        if (
            n
            and (last is None or 0 <= raw[0] - last <= _MAX_JUMP_US)
            and bool(((d >= 0) & (d <= _MAX_JUMP_US)).all())
        ):
            # the common case: no wrap, no step back, no jump in this block
            unwrapped = raw + off
            last = int(raw[-1])
            n = 0
        for i in range(n):  # rare: only blocks with a wrap or a bad line take this loop
            t = int(raw[i])
            if last is not None:
                fwd = (t - last) % WRAP  # forward distance, through a wrap if there is one
                if fwd > _MAX_JUMP_US:
                    # a step back (a corrupt line that parsed) or a far jump: accept a
                    # jump only when the next line agrees with it (a real pause)
                    nxt = int(raw[i + 1]) if i + 1 < raw.shape[0] else None
                    back = (last - t) % WRAP
                    if back <= _MAX_JUMP_US or nxt is None or not 0 <= (nxt - t) % WRAP <= _MAX_JUMP_US:
                        keep[i] = False
                        garbage += 1
                        continue
                if t < last:
                    off += WRAP
                    self.wraps += 1
            last = t
            unwrapped[i] = t + off
        self._last_raw = last
        self._offset = off
        t_us = unwrapped[keep]
        c = np.asarray(cur, dtype=np.float32)[keep]
        b = np.asarray(bus, dtype=np.float32)[keep]
        self.lines += int(t_us.shape[0])
        self.garbage += garbage
        dropped = self._count_drops(t_us)
        if t_us.shape[0]:
            self._last_t = int(t_us[-1])
        has_bus = bool(b.shape[0]) and not np.isnan(b).all()
        return Block(
            t_dev_ns=t_us * 1000,
            current_a=c / np.float32(1000.0),
            bus_v=(b / np.float32(1000.0)) if has_bus else None,
            dropped=dropped,
            garbage=garbage,
        )

    def _count_drops(self, t_us: np.ndarray) -> int:
        """Lines lost, from the streamer's own t_us (never from when lines
        arrive): each interval of about n periods is n - 1 lost lines. Each
        run goes to ``gaps``, exact (the device clock sized it)."""
        if not t_us.shape[0]:
            return 0
        if self._last_t is not None:
            t = np.concatenate(([self._last_t], t_us))
        else:
            t = t_us
        if self._period_us is None:
            # learning the period: keep the times (a few blocks' worth) and
            # count the gaps among them once it is known
            self._pending_t.extend(int(x) for x in t_us)
            if len(self._pending_t) < 33:
                return 0
            dts = np.diff(np.asarray(self._pending_t))
            self._period_us = float(np.median(dts[dts > 0]))
            t = np.asarray(self._pending_t)
            self._pending_t = []
        p = self._period_us
        dt = np.diff(t)
        at = np.flatnonzero(dt > 1.5 * p)
        n = 0
        for i in at:
            lost = int(np.rint(dt[i] / p)) - 1
            if lost > 0:
                n += lost
                self.gaps.append(
                    {
                        "t_dev_ns": int((t[i] + p) * 1000),
                        "samples": lost,
                        "uncertainty": 0,
                        "estimated": False,
                    }
                )
        return n


class InaCsvMeter(SerialMeter):
    kind = "ina-csv"
    host_clock = False

    def __init__(self, port: str, opts: Options) -> None:
        self.port = port
        self.baud = int(opts.number("baud", 921600, 300, 20_000_000))
        rate = opts.number("rate_hz", 0.0, 0.0, 1e7)
        self.nominal_rate_hz: float | None = rate or None
        self.parser = InaCsvParser(self.nominal_rate_hz)
        self._ser: Any = None
        self.purge_error: str | None = None

    def open(self) -> None:
        self._ser = open_port(self.port, self.baud)

    def start(self) -> None:
        # The streamer runs from power-on: drop what queued before the run.
        self.purge_error = purge_input(self._ser)
        self.parser.resync()

    def read(self) -> Block:
        data = read_available(self._ser)
        t_rx = now_ns()
        blk = self.parser.feed(data)
        blk.t_rx_ns = t_rx
        return blk

    def flush(self) -> Block:
        return empty_block()  # nothing is held back

    def sample_gaps(self) -> list[dict[str, Any]]:
        return list(self.parser.gaps)

    def info(self) -> dict[str, Any]:
        p = self.parser
        return {
            "baud": self.baud,
            "period_us": p.period_us,
            "lines": p.lines,
            "garbage_lines": p.garbage,
            "comment_lines": p.comments,
            "wraps": p.wraps,
            **({"purge_error": self.purge_error} if self.purge_error else {}),
        }
