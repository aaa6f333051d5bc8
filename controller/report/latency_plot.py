"""The report's latency figure: the measured latencies' CDF and histogram.

One path, as for the timeline: the distribution is ``series.latency_ms``
(``{n, quantiles[LATENCY_QUANTILES+1]}``, agent/runs/series.py), the result's
own or built the same way from the run's iterations.npy by
``timeline.series_of``. The quantiles are evenly spaced in probability, so a
histogram of them is the distribution's shape (each holds 1/1000 of the
iterations). matplotlib is imported on first use.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

# the result's nearest-rank percentiles marked on the figure: (key, label)
MARKS = (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))


def distribution(series: dict[str, Any]) -> tuple[int, np.ndarray] | None:
    """(n, quantiles) of ``series.latency_ms``; None when the run measured nothing."""
    lat = series.get("latency_ms")
    if not isinstance(lat, dict):
        return None
    q = [v for v in lat.get("quantiles") or [] if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(q) < 2:
        return None
    return int(lat.get("n") or 0), np.asarray(q, dtype=float)


def latency_png(series: dict[str, Any], summary: dict[str, Any] | None = None) -> bytes | None:
    """CDF (left) and histogram (right) of the measured latencies; the
    summary's p50/p99/p99.9 as dashed lines on both. None without a distribution."""
    dist = distribution(series)
    if dist is None:
        return None
    n, q = dist
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.2), dpi=90)
    FigureCanvasAgg(fig)
    cdf, hist = fig.subplots(1, 2)
    cdf.plot(q, np.linspace(0.0, 100.0, q.size), linewidth=1.4)
    cdf.set_xlabel("latency (ms)")
    cdf.set_ylabel("iterations at or below (%)")
    cdf.set_ylim(0, 100)
    # the quantiles are equal shares of the iterations: counting them per bin scales to iterations
    weights = np.full(q.size, (n or q.size) / q.size)
    hist.hist(q, bins=min(60, max(10, q.size // 20)), weights=weights, color="#4a7ab5")
    hist.set_xlabel("latency (ms)")
    hist.set_ylabel("iterations")
    for ax in (cdf, hist):
        ax.grid(True, alpha=0.3)
        for key, label in MARKS:
            v = (summary or {}).get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                ax.axvline(v, color="crimson", linestyle="--", linewidth=1, alpha=0.8)
                if ax is cdf:
                    ax.annotate(
                        f"{label} {v:.3g}", (v, 5), fontsize=7, color="crimson", rotation=90,
                        xytext=(2, 0), textcoords="offset points",
                    )  # fmt: skip
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
