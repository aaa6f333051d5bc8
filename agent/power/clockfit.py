"""Map a meter's own clock onto the agent's CLOCK_MONOTONIC.

Each read gives one pair: the meter time of the last sample in the read and
the host time the read returned. The host time is always *later* than the
sample by a varying USB/tty latency, so the truth is the lower envelope of the
pairs, not their mean: fit, keep the pairs at or below the line, refit.
The spread of the kept pairs around the final line is the reported uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_MIN_SPAN_NS = 500_000_000  # below this the slope is noise: assume the crystal is exact


@dataclass
class ClockFit:
    dev0_ns: int  # reference points: host = host0 + intercept + slope * (dev - dev0)
    host0_ns: int
    slope: float
    intercept_ns: float
    points: int
    residual_us: float  # rms of the envelope pairs around the line
    latency_p95_us: float  # how far above the line the other pairs sit (read latency)

    def apply(self, dev_ns: np.ndarray) -> np.ndarray:
        x = (np.asarray(dev_ns, dtype=np.int64) - self.dev0_ns).astype(np.float64)
        return self.host0_ns + np.rint(self.intercept_ns + self.slope * x).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dev0_ns": int(self.dev0_ns),
            "host0_ns": int(self.host0_ns),
            "slope": float(self.slope),
            "drift_ppm": float((self.slope - 1.0) * 1e6),
            "intercept_ns": float(self.intercept_ns),
            "points": int(self.points),
            "residual_us": float(self.residual_us),
            "latency_p95_us": float(self.latency_p95_us),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClockFit:
        return cls(
            dev0_ns=int(d["dev0_ns"]),
            host0_ns=int(d["host0_ns"]),
            slope=float(d["slope"]),
            intercept_ns=float(d["intercept_ns"]),
            points=int(d.get("points", 0)),
            residual_us=float(d.get("residual_us", 0.0)),
            latency_p95_us=float(d.get("latency_p95_us", 0.0)),
        )


def identity() -> ClockFit:
    """For meters whose samples already carry host time (polled DMMs)."""
    return ClockFit(0, 0, 1.0, 0.0, 0, 0.0, 0.0)


def fit(dev_ns: np.ndarray, host_ns: np.ndarray, keep_fraction: float = 0.25) -> ClockFit:
    dev = np.asarray(dev_ns, dtype=np.int64)
    host = np.asarray(host_ns, dtype=np.int64)
    if dev.shape[0] == 0:
        raise ValueError("no clock pairs")
    d0, h0 = int(dev[0]), int(host[0])
    x = (dev - d0).astype(np.float64)
    y = (host - h0).astype(np.float64)
    if dev.shape[0] < 3 or x.max() - x.min() < _MIN_SPAN_NS:
        slope = 1.0
        r = y - x
        b = float(np.percentile(r, 10))  # the low-latency pairs
        keep = r <= np.percentile(r, 50)
        res = (r - b)[keep]
    else:
        keep = np.ones(x.shape[0], dtype=bool)
        slope, b = 1.0, 0.0
        for _ in range(4):
            slope, b = np.polyfit(x[keep], y[keep], 1)
            r = y - (slope * x + b)
            cut = np.percentile(r, 100 * keep_fraction)
            nk = r <= cut
            if nk.sum() < 3:
                break
            keep = nk
        slope, b = np.polyfit(x[keep], y[keep], 1)
        res = (y - (slope * x + b))[keep]
    full = y - (slope * x + b)
    return ClockFit(
        dev0_ns=d0,
        host0_ns=h0,
        slope=float(slope),
        intercept_ns=float(b),
        points=int(dev.shape[0]),
        residual_us=float(np.sqrt(np.mean(res**2)) / 1e3) if res.shape[0] else 0.0,
        latency_p95_us=float(np.percentile(full, 95) / 1e3),
    )


def summary(fits: list[dict[str, Any]], host_clock: bool) -> dict[str, Any]:
    """power.json's clock_fit{}: how the segments' meter clocks were mapped."""
    if host_clock:
        return {"method": "host receive time (polled meter)", "segments": len(fits)}
    if not fits:
        return {"method": "lower-envelope linear fit", "segments": 0}
    return {
        "method": "lower-envelope linear fit",
        "segments": len(fits),
        "points": sum(f["points"] for f in fits),
        "drift_ppm": fits[0]["drift_ppm"],
        "residual_us": max(f["residual_us"] for f in fits),
        "latency_p95_us": max(f["latency_p95_us"] for f in fits),
    }
