"""Latency statistics. Percentiles are nearest-rank, as in MLPerf LoadGen: the
reported p99 is a latency that some iteration actually had."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def nearest_rank(sorted_values: Sequence[float] | np.ndarray, pct: float) -> float:
    """Nearest-rank percentile of already sorted values: the ceil(p/100*N)-th smallest."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no values")
    # round first: 99.9/100*1000 is 999.0000000000001 in floating point
    rank = max(1, math.ceil(round(pct / 100.0 * n, 9)))
    return float(sorted_values[min(rank, n) - 1])


def latency_summary_ms(latencies_ns: Sequence[int] | np.ndarray) -> dict[str, float]:
    """The result's ``latency_ms{min, mean, std, p50, p90, p95, p99, p999, max}``."""
    arr = np.sort(np.asarray(latencies_ns, dtype=np.float64)) / 1e6
    if arr.size == 0:
        raise ValueError("no latencies")
    out = {
        "min": float(arr[0]),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
    }
    for key, pct in PERCENTILES.items():
        out[key] = nearest_rank(arr, pct)
    out["max"] = float(arr[-1])
    return out
