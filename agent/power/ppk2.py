"""``ppk2``: Nordic Power Profiler Kit II over its USB CDC serial port.

Implemented from the public protocol description (Nordic's nRF Connect Power
Profiler and the ppk2-api-python project):

- single-byte opcodes, some with arguments: GetMetadata 0x19, AverageStart 0x06,
  AverageStop 0x07, SetPowerMode 0x11 (1 ampere meter, 2 source meter),
  RegulatorSet 0x0D <mV hi> <mV lo>, DeviceRunningSet 0x0C <0|1>;
- GetMetadata answers ``key: value`` text lines with the calibration, ending
  in ``END``;
- streaming at 100 kS/s, each sample a little-endian uint32: ADC value bits
  0-13, measurement range bits 14-16, a 6-bit counter bits 18-23, the 8
  digital channels bits 24-31. The counter steps by one per sample, so a jump
  is samples lost on the link.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.power.base import Block, MeterGone, Options, close_port, open_port, purge_input, read_available

OP_AVERAGE_START = 0x06
OP_AVERAGE_STOP = 0x07
OP_DEVICE_RUNNING_SET = 0x0C
OP_REGULATOR_SET = 0x0D
OP_SET_POWER_MODE = 0x11
OP_GET_METADATA = 0x19
MODE_AMPERE = 1
MODE_SOURCE = 2

ADC_MULT = 1.8 / 163840  # volts per ADC step (the ADC value is scaled by 4 first)
N_RANGES = 5
COUNTER_MASK = 0x3F
SAMPLE_PERIOD_NS = 10_000  # 100 kS/s
# Uncalibrated defaults (nominal shunt resistors per range), used for keys the
# metadata lacks.
DEFAULT_CAL: dict[str, list[float]] = {
    "R": [1031.64, 101.65, 10.15, 0.94, 0.043],
    "GS": [1.0] * 5,
    "GI": [1.0] * 5,
    "O": [0.0] * 5,
    "S": [0.0] * 5,
    "I": [0.0] * 5,
    "UG": [1.0] * 5,
}


def parse_metadata(text: str) -> dict[str, Any]:
    """``key: value`` lines up to ``END`` -> {"cal": {R: [5], ...}, "calibrated", "hw", "ia", ...}."""
    cal = {k: list(v) for k, v in DEFAULT_CAL.items()}
    meta: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, val = line.partition(":")
        key = key.strip()
        val = val.strip()
        if key == "END":
            break
        if not sep:
            continue
        base, digit = key[:-1], key[-1:]
        if base in cal and digit.isdigit() and int(digit) < N_RANGES:
            try:
                f = float(val)
            except ValueError:
                continue
            if base == "R" and f == 0.0:  # some units ship a zero resistor: keep the nominal
                continue
            cal[base][int(digit)] = f
        else:
            meta[key.lower()] = val
    meta["cal"] = cal
    return meta


def logic_bits(words: np.ndarray) -> np.ndarray:
    """The 8 digital channels (D0-D7) of each sample."""
    return ((words >> 24) & 0xFF).astype(np.uint8)


def decode(words: np.ndarray, cal: dict[str, list[float]], vdd_v: float) -> tuple[np.ndarray, np.ndarray]:
    """uint32 samples -> (current in A, counter). The per-range calibration:
    x = (4*adc - O) * ADC_MULT / R;  I = UG * (x * (GS*x + GI) + S*vdd + Iofs)."""
    adc = (words & 0x3FFF).astype(np.float64) * 4.0
    rng = np.minimum((words >> 14) & 0x7, N_RANGES - 1).astype(np.intp)
    counter = ((words >> 18) & COUNTER_MASK).astype(np.int64)
    c = {k: np.asarray(v, dtype=np.float64)[rng] for k, v in cal.items()}
    x = (adc - c["O"]) * (ADC_MULT / c["R"])
    amps = c["UG"] * (x * (c["GS"] * x + c["GI"]) + (c["S"] * vdd_v + c["I"]))
    return amps.astype(np.float32), counter


class Ppk2Decoder:
    """Byte stream -> samples with gap-aware sample indices (the PPK2's clock)."""

    def __init__(self, cal: dict[str, list[float]], vdd_v: float, period_ns: int = SAMPLE_PERIOD_NS) -> None:
        self.cal = cal
        self.vdd_v = vdd_v
        self.period_ns = period_ns
        self._rest = b""
        self._last_counter: int | None = None
        self._next_index = 0
        self.samples = 0
        self.dropped = 0
        self.logic_seen = 0  # OR of the digital channels: which ones ever went high
        self.logic_edges = 0  # channel changes between consecutive samples

    def feed(self, data: bytes) -> Block:
        buf = self._rest + data if self._rest else data
        n = len(buf) // 4
        self._rest = buf[n * 4 :]
        if n == 0:
            return Block(np.empty(0, np.int64), np.empty(0, np.float32))
        words = np.frombuffer(buf, dtype="<u4", count=n)
        amps, counter = decode(words, self.cal, self.vdd_v)
        logic = logic_bits(words)
        self.logic_seen |= int(np.bitwise_or.reduce(logic))
        self.logic_edges += int(np.count_nonzero(np.diff(logic)))
        prev = counter[0] - 1 if self._last_counter is None else self._last_counter
        steps = np.diff(counter, prepend=prev)
        # steps of one are normal; anything else (mod 64) is that many lost samples
        missing = (steps - 1) & COUNTER_MASK
        idx = self._next_index + np.cumsum(missing + 1) - 1
        self._next_index = int(idx[-1]) + 1
        self._last_counter = int(counter[-1])
        lost = int(missing.sum())
        self.dropped += lost
        self.samples += n
        return Block(t_dev_ns=idx * self.period_ns, current_a=amps, dropped=lost)


class Ppk2Meter:
    kind = "ppk2"
    host_clock = False

    def __init__(self, port: str, opts: Options) -> None:
        self.port = port
        self.baud = int(opts.number("baud", 115200, 300, 20_000_000))
        self.mode = opts.choice("mode", ("ampere", "source"), "ampere")
        self.vdd_mv = int(opts.number("vdd_mv", 3300, 800, 5000))
        self.nominal_rate_hz: float | None = opts.number("rate_hz", 100_000.0, 1.0, 1e8)
        self.metadata_timeout_s = opts.number("metadata_timeout_s", 2.0, 0.05, 30.0)
        self._ser: Any = None
        self.meta: dict[str, Any] = {}
        self.decoder: Ppk2Decoder | None = None
        self.purge_error: str | None = None

    def _write(self, *payload: int) -> None:
        try:
            self._ser.write(bytes(payload))
            self._ser.flush()
        except Exception as exc:  # pyserial raises SerialException/OSError when unplugged
            raise MeterGone(f"write failed: {exc}") from None

    def open(self) -> None:
        self._ser = open_port(self.port, self.baud)
        purge_input(self._ser)  # best effort, as at run start: a failed purge is logged, not fatal
        self._write(OP_AVERAGE_STOP)  # a PPK2 left streaming by a crashed reader
        self._write(OP_GET_METADATA)
        text = b""
        deadline = time.monotonic() + self.metadata_timeout_s
        while b"END" not in text and time.monotonic() < deadline:
            try:
                text += read_available(self._ser)
            except MeterGone as exc:
                self.close()
                raise BadInput(f"meter ppk2 at {self.port}: {exc}") from None
        if b"END" not in text:
            self.close()
            raise BadInput(f"meter ppk2 at {self.port}: no metadata (END) after GetMetadata; not a PPK2?")
        self.meta = parse_metadata(text.decode("ascii", "replace"))
        mode = MODE_AMPERE if self.mode == "ampere" else MODE_SOURCE
        self._write(OP_SET_POWER_MODE, mode)
        # RegulatorSet takes the voltage in mV, big-endian; in ampere mode it
        # is the voltage the calibration's supply term uses.
        self._write(OP_REGULATOR_SET, (self.vdd_mv >> 8) & 0xFF, self.vdd_mv & 0xFF)
        if self.mode == "source":
            self._write(OP_DEVICE_RUNNING_SET, 1)
        period = int(round(1e9 / (self.nominal_rate_hz or 100_000.0)))
        self.decoder = Ppk2Decoder(self.meta["cal"], self.vdd_mv / 1000.0, period)

    def start(self) -> None:
        # best effort (the PPK2 is stopped since open); a port that is gone fails the write
        self.purge_error = purge_input(self._ser)
        self._write(OP_AVERAGE_START)

    def read(self) -> Block:
        assert self.decoder is not None
        blk = self.decoder.feed(read_available(self._ser))
        if self.mode == "source" and len(blk):
            # the PPK2 itself supplies the board at vdd_mv: that is the bus voltage
            blk.bus_v = np.full(len(blk), self.vdd_mv / 1000.0, dtype=np.float32)
        return blk

    def stop(self) -> None:
        try:
            self._write(OP_AVERAGE_STOP)
        except MeterGone:
            pass

    def close(self) -> None:
        close_port(self._ser)
        self._ser = None

    def info(self) -> dict[str, Any]:
        d = self.decoder
        return {
            "mode": self.mode,
            "vdd_mv": self.vdd_mv,
            "calibrated": self.meta.get("calibrated"),
            "hw": self.meta.get("hw"),
            "ia": self.meta.get("ia"),
            "calibration": self.meta.get("cal"),
            "counter_drops": d.dropped if d else 0,
            "logic_channels_seen": [i for i in range(8) if d and d.logic_seen >> i & 1],
            "logic_edges": d.logic_edges if d else 0,
            **({"purge_error": self.purge_error} if self.purge_error else {}),
        }
