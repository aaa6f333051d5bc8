"""The report's timeline: throughput, temperatures, clocks and power on one
time axis (seconds from run start), throttle events marked on every panel, so
a throughput drop lines up by eye with the clock that fell and the zone that
got hot.

One path: a result's ``series{}`` (built on the agent by agent/runs/series.py,
so a result from the results DB draws without its run files) -> panels -> PNG.
A result made before results carried series gets the same series built from
its run directory. matplotlib is imported on first use: the controller only
pays for it when it draws.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from agent import rundir
from agent.power.trace import load_trace
from agent.runs import series as run_series
from agent.schema import is_finite_number

PANELS = (
    ("throughput", "inferences/s"),
    ("temps_c", "temperature (°C)"),
    ("clocks_mhz", "clock (MHz)"),
    ("power_w", "power (W)"),
)
STORED = "stored with the result"
FROM_FILES = "built from the run's files"

# {panel: {name: (t_s[], y[])}}
Panels = dict[str, dict[str, tuple[list[float], list[float]]]]


def series_of(result: dict, run_dir: Path | None = None) -> tuple[dict[str, Any], str]:
    """(series{}, where it came from): the result's own, else built from
    ``run_dir``'s files the way the agent builds it (none: the soak windows
    alone)."""
    stored = result.get("series")
    if isinstance(stored, dict):
        return stored, STORED
    samples = rundir.load_telemetry(run_dir) if run_dir is not None else []
    iterations = rundir.load_iterations(run_dir) if run_dir is not None else np.empty((0, 3), np.int64)
    t0 = result.get("t0_ns")
    if not isinstance(t0, int):  # a partial result may lack it: the first sample starts the axis
        t0 = samples[0]["t_ns"] if samples else 0
    frames = rundir.load_arrivals(run_dir) if run_dir is not None and result.get("load") else None
    built = run_series.build(
        t0, _windows(result), iterations, samples, _trace(run_dir), frames, result.get("load")
    )
    return built, FROM_FILES


def _windows(result: dict) -> list[dict[str, Any]]:
    return (result.get("soak") or {}).get("windows") or []


def _trace(run_dir: Path | None) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray] | None:
    if run_dir is None or not rundir.has_power(run_dir):
        return None
    try:
        return load_trace(run_dir)
    except (OSError, ValueError, KeyError):  # a damaged capture: the current-draw section says so
        return None


def panels(series: dict[str, Any], windows: list[dict[str, Any]]) -> Panels:
    """The panels' data, missing readings left out. What the telemetry did not
    give (no sampler, no rails), the soak windows' own figures stand in for."""
    out: Panels = {key: {} for key, _ in PANELS}
    tp = series.get("throughput")
    if tp:
        _put(out["throughput"], tp["label"], tp["t_s"], tp["y"])
    tel = series.get("telemetry") or {}
    for key in ("temps_c", "clocks_mhz", "power_w"):
        for name, ys in (tel.get(key) or {}).items():
            _put(out[key], name, tel["t_s"], ys)
    need = {k for k in ("temps_c", "clocks_mhz", "power_w") if not out[k]}
    for w in windows if need else []:
        t = float(w["t_s"]) + float(w.get("dur_s") or 0) / 2
        if "temps_c" in need:
            for z, v in (w.get("temps_c") or {}).items():
                _put(out["temps_c"], z, [t], [v.get("max") if isinstance(v, dict) else v])
        if "clocks_mhz" in need:
            for d, v in (w.get("clocks_hz") or {}).items():
                hz = v.get("min") if isinstance(v, dict) else v
                _put(out["clocks_mhz"], d, [t], [hz / 1e6 if is_finite_number(hz) else None])
        if "power_w" in need:
            _put(out["power_w"], "window mean", [t], [w.get("power_w")])
    return out


def collect_series(result: dict, run_dir: Path | None = None) -> Panels:
    """The timeline's panels for a result (and its run directory, if any)."""
    return panels(series_of(result, run_dir)[0], _windows(result))


def _put(group: dict, name: str, ts: list[float], ys: list[Any]) -> None:
    for t, v in zip(ts, ys, strict=True):
        if is_finite_number(v):
            pts, pys = group.setdefault(name, ([], []))
            pts.append(float(t))
            pys.append(float(v))


def resolution_note(series: dict[str, Any], source: str) -> str:
    """One line saying where the timeline's data came from and how fine it is."""
    parts = []
    for what, key in (("throughput", "throughput"), ("telemetry", "telemetry")):
        res = (series.get(key) or {}).get("resolution_s")
        if is_finite_number(res):
            parts.append(f"{what} every {res:g} s")
    return f"Series {source}" + (f": {', '.join(parts)}." if parts else ".")


def timeline_png(data: Panels, events: list[dict]) -> bytes | None:
    """One PNG: the non-empty panels stacked on a shared time axis, throttle
    events as dashed lines on each."""
    shown = [(key, label) for key, label in PANELS if data.get(key)]
    if not shown:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.3 * len(shown) + 0.6), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, label) in zip(axes, shown, strict=True):
        for name, (ts, ys) in sorted(data[key].items()):
            ax.plot(
                ts, ys, label=name, linewidth=1.2, drawstyle="steps-mid" if key == "throughput" else "default"
            )
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        for i, e in enumerate(events):
            ax.axvline(e["t_s"], color="crimson", linestyle="--", linewidth=1, alpha=0.8)
            if key == "clocks_mhz" and i < 8:
                ax.annotate(
                    f"{e['domain']} {e['from_hz'] / 1e6:.0f}→{e['to_hz'] / 1e6:.0f}",
                    (e["t_s"], e["to_hz"] / 1e6),
                    fontsize=7,
                    color="crimson",
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        if len(data[key]) <= 12:
            ax.legend(loc="best", fontsize=7, ncol=min(4, len(data[key])))
    axes[-1].set_xlabel("time from run start (s)")
    if events:
        axes[0].set_title("dashed: throttle events", fontsize=8, loc="right", color="crimson")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
