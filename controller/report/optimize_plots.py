"""The optimize report's pictures: both variants' latency distributions overlaid
(histograms of ``series.latency_ms`` quantiles, as latency_plot.py reads them),
as PNG bytes for a data URI. matplotlib is imported on first use."""

from __future__ import annotations

import io

import numpy as np


def latency_overlay_png(quantiles: dict[str, list[float]]) -> bytes | None:
    """``{variant: quantiles}`` -> one PNG of their histograms on shared bins; None without data."""
    data = {k: np.asarray(v, float) for k, v in quantiles.items() if v and len(v) >= 2}
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    lo = min(float(v.min()) for v in data.values())
    hi = max(float(v.max()) for v in data.values())
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 60)
    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    for name, v in data.items():
        # evenly spaced quantiles: each holds the same share of iterations
        ax.hist(v, bins=bins, alpha=0.55, label=name, density=True)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
