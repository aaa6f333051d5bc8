"""The power figure of a report: current against time with inference spans
shaded and transients marked, plus a zoom on the largest transient.

Returns PNG bytes. matplotlib is imported on first use (controller side only).
A long capture is drawn as a per-pixel min/max envelope so no spike is lost
to decimation; the zoom panel draws the raw samples.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ENVELOPE_BUCKETS = 3000
MAX_SPANS = 4000


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_s = np.asarray(t_s, dtype=np.float64)
    cur = np.asarray(current_a, dtype=np.float64)
    spans = np.asarray(spans_s, dtype=np.float64).reshape(-1, 2)
    fig, (ax, az) = plt.subplots(2, 1, figsize=(10, 6.5), gridspec_kw={"height_ratios": [3, 2]})
    try:
        _panel(ax, t_s, cur, spans, transients, threshold_a, envelope_ok=True)
        ax.set_title(title)
        if transients:
            big = max(transients, key=lambda tr: tr["peak_a"])
            d = max(big["duration_ms"] / 1e3, 1e-4)
            lo, hi = big["t_s"] - max(2 * d, 0.002), big["t_s"] + d + max(2 * d, 0.002)
            m = (t_s >= lo) & (t_s <= hi)
            _panel(az, t_s[m], cur[m], spans, [big], threshold_a, envelope_ok=False)
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
    envelope_ok: bool,
) -> None:
    if t_s.shape[0]:
        vis = spans[(spans[:, 1] >= t_s[0]) & (spans[:, 0] <= t_s[-1])] if spans.shape[0] else spans
        if vis.shape[0]:
            vis = _merge_spans(vis, MAX_SPANS)
            ymax = float(np.nanmax(cur)) * 1.1 or 1.0
            ax.broken_barh(
                [(s, e - s) for s, e in vis], (0, ymax), facecolors="tab:green", alpha=0.15, label="inference"
            )
        tt, yy = envelope(t_s, cur) if envelope_ok else (t_s, cur)
        ax.plot(tt, yy, lw=0.7, color="tab:blue", label="current")
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
    from agent.runs.files import load_trace

    run_dir = Path(run_dir)
    meta, t_ns, cur, _ = load_trace(run_dir)
    t0 = int(run_start_ns if run_start_ns is not None else meta.get("start_ns", 0))
    it_path = run_dir / "iterations.npy"
    spans = np.empty((0, 2))
    if it_path.exists():
        it = np.load(it_path).reshape(-1, 3)
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


def power_plot_png(result: dict[str, Any], files: dict[str, Path]) -> bytes | None:
    """The HTML report's hook: ``files`` maps run-file names (power.bin,
    power.json, iterations.npy) to local copies. None without a capture."""
    import shutil
    import tempfile

    if "power.bin" not in files or "power.json" not in files:
        return None
    with tempfile.TemporaryDirectory() as d:
        run_dir = Path(d)
        for name in ("power.bin", "power.json", "iterations.npy"):
            if name in files:
                src = Path(files[name])
                dst = run_dir / name
                try:
                    dst.symlink_to(src.resolve())
                except OSError:
                    shutil.copyfile(src, dst)
        return render_run(run_dir, result.get("power") or {}, result.get("t0_ns"))
