"""``scpi``: a bench DMM measuring DC current over a serial (or ser2net) port.

Two dialects, chosen by ``--meter-opt dialect=keysight|owon``:

- ``keysight`` (34461A-style subsystem commands): ``*IDN?``,
  ``CONF:CURR:DC [range]``, ``SAMP:COUN n``, ``TRIG:SOUR IMM``, then ``READ?``
  answers n comma-separated readings per trigger.
- ``owon`` (the flat set of low-cost Owon XDM meters): ``*IDN?``,
  ``CONF:CURR:DC [range]``, ``RATE F|M|L`` (speed), then ``MEAS?`` answers the
  current reading.

A DMM has no sample clock we can read, so readings carry the host receive
time (``host_clock``); batches of n are spaced by ``interval_s``. A reading
was taken between the query and its answer: its time is the midpoint, good
to half that round trip, which a loaded host stretches; power.json states
it per capture (``meter.time_uncertainty_ms``). A polled meter loses no
samples: each reading is asked for (``dropped_samples`` stays 0).
"""

from __future__ import annotations

import re
from array import array
from typing import Any

import numpy as np

from agent.clock import now_ns
from agent.errors import BadInput
from agent.power.base import Block, MeterGone, Options, SerialMeter, empty_block, open_port, purge_input

_NUM = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# Keysight reports overload as +9.9E+37
_OVERLOAD = 9.0e37


class ScpiMeter(SerialMeter):
    kind = "scpi"
    host_clock = True

    def __init__(self, port: str, opts: Options) -> None:
        self.port = port
        self.dialect = opts.choice("dialect", ("keysight", "owon"), "keysight")
        default_baud = 115200 if self.dialect == "owon" else 9600
        self.baud = int(opts.number("baud", default_baud, 300, 20_000_000))
        self.range = opts.get("range", "AUTO") or "AUTO"
        if not re.fullmatch(r"AUTO|MIN|MAX|DEF|[0-9.eE+-]+", self.range, re.I):
            raise BadInput(f"meter option range={self.range!r}: expected AUTO or a number in A")
        self.samples = int(opts.number("samples", 1, 1, 1_000_000))
        self.interval_s = opts.number("interval_s", 0.0, 0.0, 3600.0)
        self.rate = opts.choice("rate", ("F", "M", "L"), "F")
        self.timeout_s = opts.number("timeout_s", 2.0, 0.05, 60.0)
        self.nominal_rate_hz: float | None = None
        self.idn = ""
        self._ser: Any = None
        self._buf = b""
        self.readings = 0
        self.garbage = 0
        self._half_rtt_ns = array("q")  # per query: half its round trip, the reading time's bound

    # -- line I/O -----------------------------------------------------------
    def _send(self, cmd: str) -> None:
        try:
            self._ser.write(cmd.encode("ascii") + b"\n")
        except Exception as exc:  # SerialException/OSError: port gone
            raise MeterGone(f"write failed: {exc}") from None

    def _readline(self) -> bytes:
        deadline = now_ns() + int(self.timeout_s * 1e9)
        while b"\n" not in self._buf:
            if now_ns() > deadline:
                raise MeterGone(f"no answer within {self.timeout_s:g} s")
            try:
                chunk = self._ser.read(max(1, self._ser.in_waiting))
            except Exception as exc:  # SerialException/OSError: unplugged
                raise MeterGone(str(exc).splitlines()[0] if str(exc) else "port closed") from None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.strip(b"\r ")

    def query(self, cmd: str) -> bytes:
        self._send(cmd)
        return self._readline()

    # -- Meter protocol -------------------------------------------------------
    def open(self) -> None:
        self._ser = open_port(self.port, self.baud)
        purge_input(self._ser)  # best effort, as at run start: a failed purge is logged, not fatal
        try:
            self.idn = self.query("*IDN?").decode("ascii", "replace")
        except MeterGone as exc:
            self.close()
            raise BadInput(f"meter scpi at {self.port}: *IDN? failed: {exc}") from None
        rng = "" if self.range.upper() == "AUTO" else f" {self.range}"
        self._send(f"CONF:CURR:DC{rng}")
        if self.dialect == "keysight":
            self._send(f"SAMP:COUN {self.samples}")
            if self.interval_s > 0:
                self._send("SAMP:SOUR TIM")
                self._send(f"SAMP:TIM {self.interval_s:g}")
            self._send("TRIG:SOUR IMM")
        else:
            self._send(f"RATE {self.rate}")
        if self.dialect == "keysight":
            # Commands answer nothing; *OPC? proves the meter took them all
            # (the Owon flat set has no *OPC?: its first MEAS? answer proves it).
            try:
                self.query("*OPC?")
            except MeterGone as exc:
                self.close()
                raise BadInput(f"meter scpi at {self.port}: configuration not acknowledged: {exc}") from None

    def start(self) -> None:
        self._buf = b""

    def read(self) -> Block:
        t0 = now_ns()
        line = self.query("READ?" if self.dialect == "keysight" else "MEAS?")
        t1 = now_ns()
        vals: list[float] = []
        for tok in line.split(b","):
            m = _NUM.search(tok)
            if m is None:
                self.garbage += 1
                continue
            v = float(m.group(0))
            if abs(v) >= _OVERLOAD:
                self.garbage += 1
                continue
            vals.append(v)
        n = len(vals)
        self.readings += n
        if not n:
            return Block(np.empty(0, np.int64), np.empty(0, np.float32), garbage=1)
        # The reading (or the last of a batch) was taken between send and receive.
        mid = (t0 + t1) // 2
        self._half_rtt_ns.append((t1 - t0 + 1) // 2)
        step = int(self.interval_s * 1e9)
        t = mid - step * np.arange(n - 1, -1, -1, dtype=np.int64)
        return Block(t_dev_ns=t, current_a=np.asarray(vals, dtype=np.float32))

    def flush(self) -> Block:
        return empty_block()  # nothing is held back

    def info(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "idn": self.idn,
            "range": self.range,
            "samples_per_read": self.samples,
            "readings": self.readings,
            "garbage_readings": self.garbage,
            "time_uncertainty_ms": _uncertainty_ms(self._half_rtt_ns),
        }


def _uncertainty_ms(half_rtt_ns: array) -> dict[str, float] | None:
    """How far a reading's time may be off (half the query's round trip)."""
    if not half_rtt_ns:
        return None
    a = np.frombuffer(half_rtt_ns, dtype=np.int64) / 1e6
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}
