"""The report's current-draw figure: current against time with inference
spans shaded and transients marked, plus a zoom on the largest transient.

Drawn from the run's raw meter trace when its run directory is at hand; else
from the min/max envelope the result carries (``series.current_a``, see
agent/runs/series.py), with the result's transients but no raw samples to
zoom into (the zoom panel says so). Returns PNG bytes. matplotlib is imported
on first use (controller side only). A long raw capture is drawn as a
per-pixel min/max envelope so no spike is lost to decimation; the zoom panel
draws the raw samples.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent import rundir
from agent.power.trace import load_trace

ENVELOPE_BUCKETS = 3000
MAX_SPANS = 4000
TRACE, SERIES = "trace", "series"  # what the figure is drawn from


def envelope(
    t_s: np.ndarray, y: np.ndarray, buckets: int = ENVELOPE_BUCKETS
) -> tuple[np.ndarray, np.ndarray]:
    """Min/max per time bucket, interleaved, so the drawn line reaches every peak."""
    n = t_s.shape[0]
    if n <= 2 * buckets:
        return t_s, y
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    tt = np.repeat(t_s[edges[:-1]], 2)
    yy = np.empty(2 * buckets)
    yy[0::2], yy[1::2] = lo, hi
    return tt, yy


def _merge_spans(spans: np.ndarray, limit: int) -> np.ndarray:
    """Back-to-back inferences become one shaded band when there are too many to draw."""
    if spans.shape[0] <= limit:
        return spans
    gap = np.diff(spans[:, 0]).min(initial=0.0)
    out = [list(spans[0])]
    for s, e in spans[1:]:
        if s - out[-1][1] <= max(gap, (spans[-1, 1] - spans[0, 0]) / limit):
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return np.asarray(out)


def render(
    t_s: np.ndarray,
    current_a: np.ndarray,
    spans_s: np.ndarray | Sequence[tuple[float, float]] = (),
    transients: Sequence[dict[str, Any]] = (),
    threshold_a: float | None = None,
    title: str = "Current",
) -> bytes:
    """The figure from raw samples (seconds from run start, amperes)."""
    t_s = np.asarray(t_s, dtype=np.float64)
    cur = np.asarray(current_a, dtype=np.float64)
    spans = np.asarray(spans_s, dtype=np.float64).reshape(-1, 2)
    return _figure(envelope(t_s, cur), (t_s, cur), spans, transients, threshold_a, title)


def render_envelope(
    current: dict[str, Any],
    transients: Sequence[dict[str, Any]] = (),
    threshold_a: float | None = None,
    title: str = "Current",
) -> bytes:
    """The figure from a result's ``series.current_a`` {resolution_s, t_s, min, max}."""
    t = np.asarray(current["t_s"], dtype=np.float64)
    lo, hi = _floats(current["min"]), _floats(current["max"])
    yy = np.empty(2 * t.shape[0])
    yy[0::2], yy[1::2] = lo, hi
    return _figure((np.repeat(t, 2), yy), None, np.empty((0, 2)), transients, threshold_a, title)


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def _figure(
    main: tuple[np.ndarray, np.ndarray],
    raw: tuple[np.ndarray, np.ndarray] | None,
    spans: np.ndarray,
    transients: Sequence[dict[str, Any]],
    threshold_a: float | None,
    title: str,
) -> bytes:
    """``main``: what the whole-run panel draws; ``raw``: the samples the zoom
    panel draws (None: the result holds none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, az) = plt.subplots(2, 1, figsize=(10, 6.5), gridspec_kw={"height_ratios": [3, 2]})
    try:
        _panel(ax, *main, spans, transients, threshold_a)
        ax.set_title(title)
        if transients:
            big = max(transients, key=lambda tr: tr["peak_a"])
            d = max(big["duration_ms"] / 1e3, 1e-4)
            lo, hi = big["t_s"] - max(2 * d, 0.002), big["t_s"] + d + max(2 * d, 0.002)
            if raw is not None:
                m = (raw[0] >= lo) & (raw[0] <= hi)
                _panel(az, raw[0][m], raw[1][m], spans, [big], threshold_a)
            else:
                _panel(az, np.empty(0), np.empty(0), spans, [big], threshold_a)
                note = "raw samples are not stored with the result: the transient as analysed"
                az.text(0.5, 0.3, note, transform=az.transAxes, ha="center", va="center", color="0.4")
            az.set_xlim(lo, hi)
            az.set_title(
                f"Largest transient: {big['peak_a']:.3f} A for {big['duration_ms']:.2f} ms"
                f" at t={big['t_s']:.4f} s"
            )
        else:
            az.text(0.5, 0.5, "no transients above the threshold", ha="center", va="center")
            az.set_axis_off()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        return buf.getvalue()
    finally:
        plt.close(fig)


def _panel(
    ax: Any,
    t_s: np.ndarray,
    cur: np.ndarray,
    spans: np.ndarray,
    transients: Sequence[dict[str, Any]],
    threshold_a: float | None,
) -> None:
    if t_s.shape[0]:
        vis = spans[(spans[:, 1] >= t_s[0]) & (spans[:, 0] <= t_s[-1])] if spans.shape[0] else spans
        if vis.shape[0]:
            vis = _merge_spans(vis, MAX_SPANS)
            ymax = float(np.nanmax(cur)) * 1.1 or 1.0
            ax.broken_barh(
                [(s, e - s) for s, e in vis], (0, ymax), facecolors="tab:green", alpha=0.15, label="inference"
            )
        ax.plot(t_s, cur, lw=0.7, color="tab:blue", label="current")
    if threshold_a is not None:
        ax.axhline(threshold_a, color="tab:orange", ls="--", lw=0.8, label="transient threshold")
    for i, tr in enumerate(transients):
        ax.axvspan(tr["t_s"], tr["t_s"] + tr["duration_ms"] / 1e3, color="tab:red", alpha=0.25, lw=0)
        ax.plot(
            [tr["t_s"]], [tr["peak_a"]], "v", color="tab:red", ms=5, label="transient" if i == 0 else None
        )
    ax.set_xlabel("time from run start (s)")
    ax.set_ylabel("current (A)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=8)


def render_run(run_dir: Path, power: dict[str, Any] | None = None, run_start_ns: int | None = None) -> bytes:
    """The figure for a run directory (power.bin/json, iterations.npy) and its power{}."""
    meta, t_ns, cur, _ = load_trace(run_dir)
    t0 = int(run_start_ns if run_start_ns is not None else meta.get("start_ns", 0))
    it = rundir.load_iterations(run_dir)  # every inference draws current, warm-up ones too
    spans = (it[:, :2] - t0) / 1e9
    power = power or {}
    return render(
        (t_ns - t0) / 1e9,
        cur,
        spans,
        power.get("transients") or [],
        power.get("transient_threshold_a"),
        title=f"Current, {meta.get('source')}",
    )


def source(result: dict[str, Any], run_dir: Path | None = None) -> str | None:
    """What the figure for ``result`` draws from: TRACE (``run_dir`` holds the
    capture), SERIES (the result's envelope) or None (nothing to draw)."""
    if run_dir is not None and rundir.has_power(run_dir):
        return TRACE
    cur = (result.get("series") or {}).get("current_a") or {}
    return SERIES if cur.get("t_s") else None


def power_plot_png(result: dict[str, Any], run_dir: Path | None = None) -> bytes | None:
    """The report's figure; None when neither the run's capture nor the
    result's envelope is there. A damaged capture raises OSError, ValueError
    or KeyError."""
    power = result.get("power") or {}
    kind = source(result, run_dir)
    if kind == TRACE and run_dir is not None:
        return render_run(run_dir, power, result.get("t0_ns"))
    if kind == SERIES:
        return render_envelope(
            result["series"]["current_a"],
            power.get("transients") or [],
            power.get("transient_threshold_a"),
            title=f"Current, {power.get('source') or 'meter'}: {envelope_note(result)}",
        )
    return None


def envelope_note(result: dict[str, Any]) -> str:
    """How fine the result's stored current envelope is, in words."""
    res = ((result.get("series") or {}).get("current_a") or {}).get("resolution_s")
    per = f"{res:g} s" if isinstance(res, (int, float)) else "bucket"
    return f"min/max per {per}, stored with the result"
