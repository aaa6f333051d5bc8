"""A known current waveform: baseline, rectangular spikes of known height,
width and time, and seeded Gaussian noise. Emulators sample it; tests compare
what edgebench reports against its exact peaks and integrals."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Spike:
    t_s: float  # start, seconds after the emulator's stream start
    height_a: float  # above the baseline
    width_s: float


@dataclass
class Waveform:
    baseline_a: float = 0.1
    spikes: list[Spike] = field(default_factory=list)
    noise_a: float = 0.0  # Gaussian sigma
    bus_v: float | None = 5.0
    seed: int = 7

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def clean(self, t_s: np.ndarray) -> np.ndarray:
        t = np.asarray(t_s, dtype=np.float64)
        y = np.full(t.shape, self.baseline_a)
        if not t.shape[0]:
            return y
        lo, hi = float(t.min()), float(t.max())
        for s in self.spikes:  # only spikes that touch this batch (the bench has thousands)
            if s.t_s <= hi and s.t_s + s.width_s > lo:
                y[(t >= s.t_s) & (t < s.t_s + s.width_s)] += s.height_a
        return y

    def current(self, t_s: np.ndarray) -> np.ndarray:
        y = self.clean(t_s)
        if self.noise_a:
            y = y + self._rng.normal(0.0, self.noise_a, y.shape)
        return y

    def integral(self, t0: float, t1: float) -> float:
        """Exact charge (A*s) of the noise-free waveform over [t0, t1]."""
        q = self.baseline_a * (t1 - t0)
        for s in self.spikes:
            lo, hi = max(t0, s.t_s), min(t1, s.t_s + s.width_s)
            if hi > lo:
                q += s.height_a * (hi - lo)
        return q

    def peak(self) -> float:
        return self.baseline_a + max((s.height_a for s in self.spikes), default=0.0)
