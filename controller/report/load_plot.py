"""The load pattern's figure (issue 15), from ``series.load`` alone (so a
result from the DB draws it): the achieved rate against the target, misses
per bin and the p99 queue delay on one time axis; with a meter, the current
below them with each burst shaded and each transient marked. matplotlib is
imported on first use."""

from __future__ import annotations

import io
from typing import Any


def load_png(series: dict[str, Any], transients: list[dict[str, Any]] | None = None) -> bytes | None:
    ld = series.get("load")
    if not ld or not ld.get("t_s"):
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cur = series.get("current_a")
    temps = (series.get("telemetry") or {}).get("temps_c") or {}
    rows = 3 + bool(cur) + bool(temps)
    fig = Figure(figsize=(10, 2.0 * rows + 0.6), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    ts = ld["t_s"]
    ax = axes[0]
    ax.plot(ts, ld["achieved_hz"], drawstyle="steps-mid", label="achieved")
    if ld.get("target_hz"):
        ax.axhline(ld["target_hz"], color="green", linestyle="--", linewidth=1, label="target")
    ax.set_ylabel("frames/s")
    ax.legend(loc="best", fontsize=7)
    axes[1].bar(ts, ld["misses"], width=float(ld.get("resolution_s") or 1.0) * 0.9, color="crimson")
    axes[1].set_ylabel(f"misses / {ld.get('resolution_s'):g} s")
    qd = [(t, y) for t, y in zip(ts, ld["queue_delay_p99_ms"], strict=True) if y is not None]
    if qd:
        axes[2].plot([t for t, _ in qd], [y for _, y in qd], color="darkorange")
    axes[2].set_ylabel("queue delay p99 (ms)")
    i = 3
    if cur:
        ax = axes[i]
        ax.fill_between(cur["t_s"], cur["min"], cur["max"], step="mid", linewidth=0.6, alpha=0.7)
        for tr in transients or []:
            ax.axvline(tr["t_s"], color="crimson", linewidth=0.8, alpha=0.8)
        ax.set_ylabel("current (A)")
        i += 1
    if temps:
        tel = series["telemetry"]
        for zone, ys in sorted(temps.items()):
            pts = [(t, y) for t, y in zip(tel["t_s"], ys, strict=True) if y is not None]
            axes[i].plot([t for t, _ in pts], [y for _, y in pts], label=zone, linewidth=1)
        axes[i].set_ylabel("temperature (°C)")
        if len(temps) <= 8:
            axes[i].legend(loc="best", fontsize=7, ncol=4)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        for t0, t1 in ld.get("bursts") or []:
            ax.axvspan(t0, t1, color="gold", alpha=0.25, linewidth=0)
    axes[-1].set_xlabel("time from run start (s)")
    if ld.get("bursts"):
        axes[0].set_title("shaded: bursts; red lines: current transients", fontsize=8, loc="right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
