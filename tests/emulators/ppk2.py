"""A Nordic PPK2 on a pty: answers GetMetadata with calibration text ending
in END, takes SetPowerMode / RegulatorSet / DeviceRunningSet, streams 4-byte
little-endian samples (ADC bits 0-13, range bits 14-16, 6-bit counter bits
18-23, logic bits 24-31) after AverageStart, and stops on AverageStop.

Run as a script to stream from its own process (bench/bench_power.py):
``python -m emulators.ppk2 --rate 100000`` prints the port, then streams.
"""

from __future__ import annotations

import numpy as np

from .stream import StreamEmulator
from .waveform import Waveform

ADC_MULT = 1.8 / 163840
ARG_LEN = {0x11: 1, 0x0D: 2, 0x0C: 1, 0x03: 1, 0x04: 1, 0x08: 1, 0x02: 1, 0x01: 2}

# Not the nominal values: a decoder that ignores the metadata is off by percents.
CAL = {
    "R": [1003.3, 101.52, 10.12, 0.951, 0.0431],
    "GS": [0.0] * 5,
    "GI": [1.02, 1.01, 1.015, 1.02, 0.985],
    "O": [45.1, 52.0, 48.7, 40.2, 61.3],
    "S": [1e-7, 2e-7, 5e-7, 1.5e-4, 2e-4],
    "I": [1e-8, 3e-8, 2e-7, 1e-4, 3e-4],
    "UG": [0.99, 1.0, 1.01, 0.995, 1.003],
}


def metadata_text(cal: dict[str, list[float]] = CAL) -> bytes:
    lines = ["Calibrated: 1"]
    for k in ("R", "GS", "GI", "O", "S", "I", "UG"):
        lines += [f"{k}{i}: {v}" for i, v in enumerate(cal[k])]
    lines += ["HW: 9173", "IA: 56", "END", ""]
    return "\n".join(lines).encode()


def encode_words(
    amps: np.ndarray, counter: np.ndarray, vdd_v: float, cal: dict = CAL, logic: int = 0
) -> np.ndarray:
    """Invert the PPK2 calibration (GS = 0) and pick the most sensitive range that fits."""
    a = np.asarray(amps, dtype=np.float64)[:, None]
    c = {k: np.asarray(cal[k])[None, :] for k in ("R", "GI", "O", "S", "I", "UG")}
    x = (a / c["UG"] - c["S"] * vdd_v - c["I"]) / c["GI"]
    adc = np.rint((x * c["R"] / ADC_MULT + c["O"]) / 4.0)
    ok = (adc >= 0) & (adc <= 16000)
    rng = np.where(ok.any(axis=1), ok.argmax(axis=1), 4)
    val = np.clip(adc[np.arange(a.shape[0]), rng], 0, 16383).astype(np.uint32)
    return (
        val
        | (rng.astype(np.uint32) << 14)
        | ((counter.astype(np.uint32) & 0x3F) << 18)
        | (np.uint32(logic) << 24)
    )


class Ppk2Emulator(StreamEmulator):
    def __init__(
        self, waveform: Waveform, rate_hz: float = 100_000.0, vdd_mv: int = 3300, **kw: object
    ) -> None:
        kw.setdefault("fifo_bytes", 256 * 1024)  # type: ignore[union-attr]
        super().__init__(waveform, rate_hz, **kw)  # type: ignore[arg-type]
        self.vdd_mv = vdd_mv
        self._cmd = b""
        self.commands: list[tuple[int, ...]] = []
        self.mode: int | None = None

    def step(self) -> None:
        self._cmd += self.dev.read()
        while self._cmd:
            op = self._cmd[0]
            n = 1 + ARG_LEN.get(op, 0)
            if len(self._cmd) < n:
                break
            cmd, self._cmd = tuple(self._cmd[:n]), self._cmd[n:]
            self.commands.append(cmd)
            if op == 0x19:
                self.dev.push(metadata_text(), 0)
            elif op == 0x06:
                self.begin()
            elif op == 0x07:
                self.streaming = False
            elif op == 0x11:
                self.mode = cmd[1]
            elif op == 0x0D:
                self.vdd_mv = (cmd[1] << 8) | cmd[2]
        self.emit_due()

    sample_bytes = 4

    def encode(self, idx: np.ndarray, t_s: np.ndarray, amps: np.ndarray) -> bytes:
        words = encode_words(amps, idx, self.vdd_mv / 1000.0)
        words |= (self.wf.clean(t_s) > self.wf.baseline_a).astype(np.uint32) << 24  # D0: "busy" GPIO
        return words.astype("<u4").tobytes()

    def emit_due(self) -> None:
        # Fast path (no faults scheduled): one bytes object for the whole batch.
        if self.garbage or self.skip_ranges or not self.streaming:
            return super().emit_due()
        import time

        due = int((time.monotonic_ns() - self.t0_ns) * self.rate_hz / 1e9) + 1
        due = min(due, self.next_i + self.max_batch)
        if due <= self.next_i:
            return
        idx = np.arange(self.next_i, due, dtype=np.int64)
        self.next_i = due
        t_s = idx / self.rate_hz
        words = encode_words(self.wf.current(t_s), idx, self.vdd_mv / 1000.0)
        words |= (self.wf.clean(t_s) > self.wf.baseline_a).astype(np.uint32) << 24  # D0: "busy" GPIO
        if self.dev.push(words.astype("<u4").tobytes(), idx.shape[0]):
            self.emitted += idx.shape[0]


def main() -> None:
    import argparse
    import sys
    import time

    from .waveform import Spike

    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100_000.0)
    ap.add_argument("--seconds", type=float, default=3600.0)
    a = ap.parse_args()
    wf = Waveform(baseline_a=0.08, noise_a=0.002, spikes=[Spike(1.0 + i, 0.4, 0.005) for i in range(3600)])
    emu = Ppk2Emulator(wf, rate_hz=a.rate)
    emu.start()
    print(emu.port, flush=True)
    deadline = time.monotonic() + a.seconds
    try:
        while time.monotonic() < deadline and sys.stdin.readline():
            pass  # the parent closes stdin to stop us
    finally:
        print(f"emitted={emu.emitted} overflow={emu.dev.overflow_units}", file=sys.stderr, flush=True)
        emu.stop()


if __name__ == "__main__":
    main()
