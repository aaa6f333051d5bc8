"""An INA226/INA228 streamer on a pty: ``<t_us>,<current_mA>[,<bus_mV>]`` lines
with a header and ``#`` comments, a 32-bit microsecond counter that can be
started just before its wrap, garbage bytes, lost lines and an unplug."""

from __future__ import annotations

import numpy as np

from .stream import StreamEmulator
from .waveform import Waveform

WRAP = 1 << 32


class InaCsvEmulator(StreamEmulator):
    def __init__(
        self,
        waveform: Waveform,
        rate_hz: float = 2000.0,
        t_us_start: int = 0,
        header: bool = True,
        **kw: object,
    ) -> None:
        super().__init__(waveform, rate_hz, **kw)  # type: ignore[arg-type]
        self.t_us_start = t_us_start
        self.header = header

    def step(self) -> None:
        if not self.streaming:
            if self.header:
                self.dev.push(b"# ina_streamer v1 INA228 shunt=0.010 ohm\nt_us,current_mA,bus_mV\n", 0)
            self.begin()
        self.emit_due()

    def device_t_us(self, idx: np.ndarray) -> np.ndarray:
        return (
            self.t_us_start + np.rint(idx * (1e6 / self.rate_hz) * (1.0 + self.ppm * 1e-6)).astype(np.int64)
        ) % WRAP

    def encode(self, idx: np.ndarray, t_s: np.ndarray, amps: np.ndarray) -> list[bytes]:
        tus = self.device_t_us(idx).tolist()
        ma = (amps * 1000.0).tolist()
        if self.wf.bus_v is None:
            return [f"{t},{a:.3f}\n".encode() for t, a in zip(tus, ma, strict=False)]
        mv = self.wf.bus_v * 1000.0
        return [f"{t},{a:.3f},{mv:.1f}\n".encode() for t, a in zip(tus, ma, strict=False)]
