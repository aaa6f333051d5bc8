"""A bench DMM on a pty answering SCPI: the Keysight 34461A-style subset
(*IDN?, *OPC?, CONF:CURR:DC, SAMP:COUN, TRIG:SOUR, READ?, INIT, FETC?) or the
Owon XDM flat set (*IDN?, CONF:CURR:DC, RATE F|M|L, MEAS?). Each reading is
the waveform at the host time the query arrives."""

from __future__ import annotations

import time

import numpy as np

from .pty import EmulatorThread
from .waveform import Waveform

IDN = {
    "keysight": b"Keysight Technologies,34461A,MY00000000,A.03.01-02.40-03.01-00.52-02-01\n",
    "owon": b"OWON,XDM1041,2203120,V3.8.2,2\n",
}


class ScpiEmulator(EmulatorThread):
    def __init__(
        self,
        waveform: Waveform,
        dialect: str = "keysight",
        garbage_every: int = 0,
        disconnect_at_s: float | None = None,
    ) -> None:
        super().__init__()
        self.wf = waveform
        self.dialect = dialect
        self.garbage_every = garbage_every
        self.disconnect_at_s = disconnect_at_s
        self.t0_ns = time.monotonic_ns()
        self.commands: list[str] = []
        self.samp_coun = 1
        self.function = None
        self.queries = 0
        self._buf = b""
        self._last: list[float] = []
        self.reading_ns: list[int] = []  # when each reading was taken (the truth for its timestamp)

    def _reading(self) -> float:
        now = time.monotonic_ns()
        self.reading_ns.append(now)
        t = (now - self.t0_ns) / 1e9
        return float(self.wf.current(np.array([t]))[0])

    def step(self) -> None:
        self._buf += self.dev.read()
        while b"\n" in self._buf:
            raw, _, self._buf = self._buf.partition(b"\n")
            cmd = raw.strip().decode("ascii", "replace")
            self.commands.append(cmd)
            self.handle(cmd.upper())

    def handle(self, cmd: str) -> None:
        k = self.dialect == "keysight"
        if cmd == "*IDN?":
            self.dev.push(IDN[self.dialect])
        elif cmd == "*OPC?" and k:
            self.dev.push(b"1\n")
        elif cmd.startswith("CONF:CURR:DC"):
            self.function = "CURR:DC"
        elif cmd.startswith("SAMP:COUN") and k:
            self.samp_coun = int(cmd.split()[1])
        elif cmd in ("READ?", "FETC?") and k or cmd == "MEAS?" and not k:
            self.queries += 1
            if self.garbage_every and self.queries % self.garbage_every == 0:
                self.dev.push(b"\x15\xfe?!\n")
                return
            vals = [self._reading() for _ in range(self.samp_coun if k else 1)]
            fmt = "{:+.9E}" if k else "{:.5E}"
            self.dev.push((",".join(fmt.format(v) for v in vals) + "\n").encode())
        # everything else (TRIG:SOUR, RATE, INIT...) is taken silently, as a DMM does
