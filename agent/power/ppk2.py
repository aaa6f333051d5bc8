"""``ppk2``: Nordic Power Profiler Kit II over its USB CDC serial port.

Implemented from the public protocol description (Nordic's nRF Connect Power
Profiler and the ppk2-api-python project):

- single-byte opcodes, some with arguments: GetMetadata 0x19, AverageStart 0x06,
  AverageStop 0x07, SetPowerMode 0x11 (1 ampere meter, 2 source meter),
  RegulatorSet 0x0D <mV hi> <mV lo>, DeviceRunningSet 0x0C <0|1>;
- GetMetadata answers ``key: value`` text lines with the calibration, ending
  in ``END``;
- streaming at 100 kS/s, each sample a little-endian uint32, decoded by
  ``ppk2_stream.py``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from agent.clock import now_ns
from agent.errors import BadInput
from agent.power.base import (
    Block,
    MeterGone,
    Options,
    SerialMeter,
    empty_block,
    open_port,
    purge_input,
    read_available,
)
from agent.power.ppk2_stream import Ppk2Decoder, parse_metadata

OP_AVERAGE_START = 0x06
OP_AVERAGE_STOP = 0x07
OP_DEVICE_RUNNING_SET = 0x0C
OP_REGULATOR_SET = 0x0D
OP_SET_POWER_MODE = 0x11
OP_GET_METADATA = 0x19
MODE_AMPERE = 1
MODE_SOURCE = 2


class Ppk2Meter(SerialMeter):
    kind = "ppk2"
    host_clock = False
    sample_clock = True  # t_dev_ns is the sample index x period: the PPK2's only clock

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
        data = read_available(self._ser)
        t_rx = now_ns()  # receive time: sizes lost runs of 64
        try:
            behind = bool(self._ser.in_waiting)  # more waiting: this read's lag is backlog, not latency
        except Exception:  # a port gone between the two calls: the next read reports it
            behind = False
        blk = self._with_bus_v(self.decoder.feed(data, t_rx, behind))
        blk.t_rx_ns = t_rx
        return blk

    def flush(self) -> Block:
        return self._with_bus_v(self.decoder.flush()) if self.decoder is not None else empty_block()

    def _with_bus_v(self, blk: Block) -> Block:
        if self.mode == "source" and len(blk):
            # the PPK2 itself supplies the board at vdd_mv: that is the bus voltage
            blk.bus_v = np.full(len(blk), self.vdd_mv / 1000.0, dtype=np.float32)
        return blk

    def stop(self) -> None:
        try:
            self._write(OP_AVERAGE_STOP)
        except MeterGone:
            pass

    def sample_gaps(self) -> list[dict[str, Any]]:
        d = self.decoder
        if d is None:
            return []
        return [
            {**{k: v for k, v in g.items() if k != "index"}, "t_dev_ns": g["index"] * d.period_ns}
            for g in d.gaps
        ]

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
            "wrap_runs_from_host_clock": d.wrap_runs if d else 0,
            # how far a 1 s window's lowest receive lag strayed lately: what
            # bounds the sizes of runs of 64 (tens of us quiet, ms loaded)
            "lag_stray_us": _us(d.floor.stray(1_000_000_000)) if d else None,
            "out_of_order_counters": d.out_of_order if d else 0,
            "resyncs": d.resyncs if d else 0,
            "logic_channels_seen": [i for i in range(8) if d and d.logic_seen >> i & 1],
            "logic_edges": d.logic_edges if d else 0,
            **({"purge_error": self.purge_error} if self.purge_error else {}),
        }


def _us(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e3
