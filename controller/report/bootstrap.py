"""A percentile-bootstrap confidence interval for the ratio of two runs'
median latencies, from each run's exact latencies (``iterations.npy``) or
from the distribution stored with its result (``series.latency_ms``: n and
1001 evenly spaced quantiles).

Method. A bootstrap resample draws n latencies from the run's inverse CDF at
n uniform random points: the empirical step function of the exact latencies
(that is, resampling them with replacement), or the linear interpolation of
the stored quantiles. The inverse CDF is monotone, so a resample's median is
the inverse CDF at the median of the n uniforms, and that is drawn directly
from its order-statistic law (the k-th smallest of n uniforms is
Beta(k, n-k+1); the next one is that plus (1-it) x Beta(1, n-k)). This gives
the same distribution as materialising n values per resample, in O(resamples)
work whatever n is: a 30-minute soak of a 1 ms model costs as little as a
short bench. Each run is resampled independently; the interval is the
2.5 / 97.5 percentiles of median(A*) / median(B*).

Run-to-run noise. Resampling one run's iterations says how well that run
pins its own median, not how far a second run of the same model would land
from it (clock state, memory placement, other load). ``run_noise`` adds that
as a log-normal factor per run, exp(N(0, run_noise)), to every resampled
median; 0 gives the within-run interval alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class Latencies:
    """One run's latency distribution as an inverse CDF: ``exact`` sorted
    latencies (ms), or ``quantiles`` evenly spaced over 0..100 %."""

    n: int
    source: str  # "iterations" (exact) | "quantiles" (series.latency_ms)
    values: np.ndarray  # sorted latencies, or the quantiles

    def inverse_cdf(self, u: np.ndarray) -> np.ndarray:
        if self.source == "iterations":
            # resampling with replacement: the floor(u*n)-th smallest value
            idx = np.minimum((u * self.n).astype(np.int64), self.n - 1)
            return self.values[idx]
        grid = np.linspace(0.0, 1.0, self.values.shape[0])
        return np.interp(u, grid, self.values)

    def median(self) -> float:
        if self.source == "iterations":
            return float(np.median(self.values))
        return float(np.interp(0.5, np.linspace(0.0, 1.0, self.values.shape[0]), self.values))


def from_latencies(latencies_ms: np.ndarray) -> Latencies | None:
    """Exact per-iteration latencies (ms); None when there are none."""
    x = np.sort(np.asarray(latencies_ms, dtype=np.float64).ravel())
    return Latencies(int(x.shape[0]), "iterations", x) if x.shape[0] else None


def from_iterations(iterations: np.ndarray) -> Latencies | None:
    """The measured rows of an ``iterations.npy`` array (start_ns, end_ns, phase)."""
    from agent.rundir import measured_rows

    it = measured_rows(iterations)
    return from_latencies((it[:, 1] - it[:, 0]) / 1e6) if it.shape[0] else None


def from_series(series_latency: Any) -> Latencies | None:
    """A result's ``series.latency_ms`` ({n, quantiles[]}); None when absent or
    unusable (an older result, a null quantile)."""
    if not isinstance(series_latency, dict):
        return None
    n, q = series_latency.get("n"), series_latency.get("quantiles")
    if not isinstance(n, int) or n < 1 or not isinstance(q, Sequence) or len(q) < 2:
        return None
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in q):
        return None
    arr = np.asarray(q, dtype=np.float64)
    # rounding in the stored series can break monotonicity by a last digit
    return Latencies(n, "quantiles", np.maximum.accumulate(arr))


def bootstrap_medians(lat: Latencies, rng: np.random.Generator, resamples: int = RESAMPLES) -> np.ndarray:
    """``resamples`` medians of n-value resamples of ``lat`` (see the module doc)."""
    n = lat.n
    if n % 2:
        k = (n + 1) // 2
        return lat.inverse_cdf(rng.beta(k, n - k + 1, resamples))
    k = n // 2  # the median is the mean of the k-th and (k+1)-th smallest
    lo = rng.beta(k, n - k + 1, resamples)
    hi = lo + (1.0 - lo) * rng.beta(1, n - k, resamples)
    return (lat.inverse_cdf(lo) + lat.inverse_cdf(hi)) / 2.0


def median_ratio_ci(
    a: Latencies,
    b: Latencies,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    run_noise: float = 0.0,
) -> dict[str, Any]:
    """median(A) / median(B) (>1: B is faster) with its percentile-bootstrap
    interval; ``significant`` when the interval excludes 1. ``run_noise`` is
    the run-to-run spread of a median (a fraction: 0.02 = 2 %)."""
    rng = np.random.default_rng(seed)
    ma = bootstrap_medians(a, rng, resamples)
    mb = bootstrap_medians(b, rng, resamples)
    if run_noise > 0:
        ma = ma * np.exp(rng.normal(0.0, run_noise, resamples))
        mb = mb * np.exp(rng.normal(0.0, run_noise, resamples))
    ratios = ma / mb
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = (float(v) for v in np.percentile(ratios, [tail, 100.0 - tail]))
    return {
        "ratio": a.median() / b.median(),
        "low": low,
        "high": high,
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "run_noise": run_noise,
        "significant": bool(low > 1.0 or high < 1.0),
    }
