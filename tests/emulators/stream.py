"""Shared pacing for streaming meters: sample i is due at t0 + i/rate on the
host clock; the device's own clock runs ``ppm`` fast. Scheduled faults:
garbage bytes before a sample index, skipped (lost) samples, an unplug."""

from __future__ import annotations

import time

import numpy as np

from .pty import EmulatorThread
from .waveform import Waveform


class StreamEmulator(EmulatorThread):
    sample_bytes: int | None = None  # fixed-size binary samples: encode() returns one bytes object

    def __init__(
        self,
        waveform: Waveform,
        rate_hz: float,
        ppm: float = 0.0,
        garbage: list[tuple[float, bytes]] | None = None,
        skips: list[tuple[float, int]] | None = None,
        disconnect_at_s: float | None = None,
        fifo_bytes: int = 1 << 20,
        max_batch: int = 20000,
    ) -> None:
        super().__init__(fifo_bytes)
        self.wf = waveform
        self.rate_hz = rate_hz
        self.ppm = ppm
        self.garbage = sorted((int(round(t * rate_hz)), b) for t, b in (garbage or []))
        self.skip_ranges = [(int(round(t * rate_hz)), n) for t, n in (skips or [])]
        self.disconnect_at_s = disconnect_at_s
        self.max_batch = max_batch
        self.next_i = 0
        self.streaming = False
        self.emitted = 0
        self.skipped = 0

    def begin(self) -> None:
        self.t0_ns = time.monotonic_ns()
        self.streaming = True

    def encode(self, idx: np.ndarray, t_s: np.ndarray, amps: np.ndarray) -> list[bytes] | bytes:
        """One bytes object per sample (or one for all, see ``sample_bytes``)."""
        raise NotImplementedError

    def join(self, chunks: list[bytes] | bytes, keep: np.ndarray, a: int, b: int) -> bytes:
        """The kept samples a..b-1 as one bytes object. ``encode`` gives one
        bytes object per sample, or (``sample_bytes`` set) all of them in one."""
        if self.sample_bytes:
            rows = np.frombuffer(chunks, dtype=np.uint8).reshape(-1, self.sample_bytes)
            return rows[a:b][keep[a:b]].tobytes()
        return b"".join(chunks[k] for k in range(a, b) if keep[k])

    def emit_due(self) -> None:
        if not self.streaming:
            return
        due = int((time.monotonic_ns() - self.t0_ns) * self.rate_hz / 1e9) + 1
        due = min(due, self.next_i + self.max_batch)
        if due <= self.next_i:
            return
        idx = np.arange(self.next_i, due, dtype=np.int64)
        self.next_i = due
        keep = np.ones(idx.shape[0], dtype=bool)
        for a, n in self.skip_ranges:
            keep &= ~((idx >= a) & (idx < a + n))
        self.skipped += int((~keep).sum())
        t_s = idx / self.rate_hz
        amps = self.wf.current(t_s)
        chunks = self.encode(idx, t_s, amps)
        out = bytearray()
        # garbage goes in before the sample it is scheduled at; the kept
        # samples between are joined at once (a per-sample loop at 100 kS/s
        # makes the emulator itself fall behind)
        k = 0
        while k < idx.shape[0]:
            while self.garbage and self.garbage[0][0] <= idx[k]:
                out += self.garbage.pop(0)[1]
            stop = idx.shape[0]
            if self.garbage and self.garbage[0][0] <= idx[-1]:
                stop = k + int(np.searchsorted(idx[k:], self.garbage[0][0]))
            out += self.join(chunks, keep, k, stop)
            k = stop
        n = int(keep.sum())
        if self.dev.push(bytes(out), n):
            self.emitted += n
