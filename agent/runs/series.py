"""The result's ``series{}``: the time series a report plots, built once on the
agent from what the run holds, downsampled to a stated resolution, so that a
result alone (from the results DB, with no run files) draws the same plots as
the fetched files do.

Layout (times are seconds from run start, ``t0_ns``)::

    series{
      max_points,                                   # per panel, the cap
      throughput{label, resolution_s, t_s[], y[]},  # soak windows, or 1 s bins of iterations
      telemetry{resolution_s, t_s[],                # one shared time axis
                temps_c{zone: []}, clocks_mhz{domain: []}, power_w{rail: []}},
      current_a{resolution_s, t_s[], min[], max[]}, # the meter's min/max envelope per bucket
      latency_ms{n, quantiles[]},                   # LATENCY_QUANTILES+1 evenly spaced quantiles
                                                    #   of the measured latencies (0 .. 100 %)
      load{resolution_s, target_hz, t_s[],          # a load pattern, per bin (1 s, or the soak window):
           achieved_hz[], misses[],                 #   frames done per second, late + dropped frames,
           queue_delay_p99_ms[], bursts[[t0, t1]]}, #   queue delay p99; each burst's span
    }

``latency_ms`` lets a comparison from the DB alone resample the run's latency
distribution (``compare``'s bootstrap) without the per-iteration file: the
quantiles are its inverse CDF at a 0.1 % step. A missing reading is ``null``.
Each panel is absent when the run had no such data. The envelope keeps every
peak: a 100 kS/s capture of 30 minutes becomes ``max_points`` buckets whose
max is the highest sample in each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.rundir import measured_rows

MAX_POINTS = 600
LATENCY_QUANTILES = 1000
_DIGITS = 5  # significant digits kept: far below any sensor's resolution


def _r(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    if x == 0:
        return 0.0
    return round(float(x), _DIGITS - 1 - int(math.floor(math.log10(abs(x)))))


def _t(x: float) -> float:
    return round(float(x), 4)  # 0.1 ms: finer than any plotted step


def throughput(t0_ns: int, windows: Sequence[dict[str, Any]], iterations: np.ndarray) -> dict | None:
    """Soak windows when the run has them, else measured iterations per 1 s bin
    (the partial first and last bins would read as dips, so they are dropped)."""
    if windows:
        ts = [float(w["t_s"]) + float(w.get("dur_s") or 0) / 2 for w in windows]
        ys = [w.get("throughput_ips") for w in windows]
        res = float(np.median(np.diff(ts))) if len(ts) > 1 else None
        return _thin_xy("inferences/s (window)", ts, ys, res)
    it = measured_rows(iterations)
    if not it.shape[0]:
        return None
    secs = (it[:, 1] - t0_ns) / 1e9
    lo, hi = math.floor(secs.min()), math.ceil(secs.max())
    counts, edges = np.histogram(secs, bins=max(1, hi - lo), range=(lo, max(hi, lo + 1)))
    keep = slice(1, -1) if counts.size > 2 else slice(None)
    ts = [float(x) + 0.5 for x in edges[:-1][keep]]
    return _thin_xy("inferences/s (1 s bins)", ts, [float(c) for c in counts[keep]], 1.0)


def _thin_xy(label: str, ts: list[float], ys: list[Any], res: float | None) -> dict:
    step = max(1, math.ceil(len(ts) / MAX_POINTS))
    return {
        "label": label,
        "resolution_s": None if res is None else _r(res * step),
        "t_s": [_t(t) for t in ts[::step]],
        "y": [_r(y) for y in ys[::step]],
    }


def telemetry(t0_ns: int, samples: Sequence[dict[str, Any]]) -> dict | None:
    """Temperatures, clocks (MHz) and rail power on one time axis, every
    ``step``-th sample; a zone absent from a sample is null there."""
    if not samples:
        return None
    step = max(1, math.ceil(len(samples) / MAX_POINTS))
    picked = list(samples[::step])
    ts = [(s["t_ns"] - t0_ns) / 1e9 for s in picked]
    out: dict[str, Any] = {
        "resolution_s": _r(float(np.median(np.diff(ts)))) if len(ts) > 1 else None,
        "t_s": [_t(t) for t in ts],
        "temps_c": {},
        "clocks_mhz": {},
        "power_w": {},
    }
    n = len(picked)
    for i, s in enumerate(picked):
        for z, v in (s.get("temps_c") or {}).items():
            out["temps_c"].setdefault(z, [None] * n)[i] = _r(v)
        for d, v in (s.get("clocks_hz") or {}).items():
            out["clocks_mhz"].setdefault(d, [None] * n)[i] = (
                _r(v / 1e6) if isinstance(v, (int, float)) else None
            )
        for rail, v in (s.get("rails") or {}).items():
            out["power_w"].setdefault(rail, [None] * n)[i] = _r(v.get("w")) if isinstance(v, dict) else None
    return out


def current(t0_ns: int, t_ns: np.ndarray, current_a: np.ndarray) -> dict | None:
    """The meter's current as a min/max envelope over at most MAX_POINTS buckets."""
    n = int(t_ns.shape[0])
    if n == 0:
        return None
    buckets = min(MAX_POINTS, n)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    starts = edges[:-1]
    lo = np.minimum.reduceat(current_a, starts)
    hi = np.maximum.reduceat(current_a, starts)
    t_s = (t_ns[starts] - t0_ns) / 1e9
    span_s = (int(t_ns[-1]) - int(t_ns[0])) / 1e9
    return {
        "resolution_s": _r(span_s / buckets) if span_s > 0 else None,
        "t_s": [_t(t) for t in t_s],
        "min": [_r(v) for v in lo],
        "max": [_r(v) for v in hi],
    }


def latency(iterations: np.ndarray) -> dict | None:
    """The measured latencies' distribution: n, and quantiles 0, 0.1, ..., 100 %."""
    it = measured_rows(iterations)
    if not it.shape[0]:
        return None
    lat_ms = (it[:, 1] - it[:, 0]) / 1e6
    q = np.quantile(lat_ms, np.linspace(0.0, 1.0, LATENCY_QUANTILES + 1))
    return {"n": int(lat_ms.shape[0]), "quantiles": [_r(v) for v in q]}


def load(t0_ns: int, frames: np.ndarray, load_doc: dict[str, Any], bin_s: float = 1.0) -> dict | None:
    """A load pattern's frames per bin, by arrival: the rate achieved (frames
    done per second) against the target, misses (late + dropped) and the p99
    queue delay; and each burst's span, for shading."""
    f = np.asarray(frames, dtype=np.int64).reshape(-1, 4)
    if not f.shape[0]:
        return None
    t = (f[:, 0] - t0_ns) / 1e9
    lo = float(t.min())  # bins start at the first arrival (the measured phase's start at a rate)
    nbins = max(1, math.ceil((t.max() - lo) / bin_s + 1e-9))
    nbins_capped = min(nbins, MAX_POINTS)
    width = bin_s * math.ceil(nbins / nbins_capped)
    idx = np.minimum(((t - lo) / width).astype(np.int64), nbins_capped - 1)
    done = f[:, 1] >= 0
    deadline = load_doc.get("deadline_ms")
    late = done & ((f[:, 2] - f[:, 0]) / 1e6 > deadline) if deadline is not None else np.zeros(len(f), bool)
    n_done = np.bincount(idx[done], minlength=nbins_capped)
    misses = np.bincount(idx[late | ~done], minlength=nbins_capped)
    qd = (f[:, 1] - f[:, 0]) / 1e6
    p99: list[float | None] = []
    for b in range(nbins_capped):
        sel = qd[(idx == b) & done]
        p99.append(_r(float(np.quantile(sel, 0.99))) if sel.size else None)
    spans = [
        [_t((b["start_ns"] - t0_ns) / 1e9), _t(((b.get("end_ns") or b["start_ns"]) - t0_ns) / 1e9)]
        for b in load_doc.get("bursts") or []
    ][:MAX_POINTS]
    return {
        "resolution_s": _r(width),
        "target_hz": load_doc.get("rate_hz"),
        "t_s": [_t(lo + (b + 0.5) * width) for b in range(nbins_capped)],
        "achieved_hz": [_r(c / width) for c in n_done],
        "misses": [int(m) for m in misses],
        "queue_delay_p99_ms": p99,
        "bursts": spans,
    }


def build(
    t0_ns: int,
    windows: Sequence[dict[str, Any]],
    iterations: np.ndarray,
    samples: Sequence[dict[str, Any]],
    trace: tuple[Any, np.ndarray, np.ndarray, np.ndarray] | None = None,
    frames: np.ndarray | None = None,
    load_doc: dict[str, Any] | None = None,
    bin_s: float = 1.0,
) -> dict[str, Any]:
    """``series{}`` for a result: ``trace`` is ``agent.power.trace.load_trace``'s tuple when
    the run had a meter."""
    out: dict[str, Any] = {"max_points": MAX_POINTS}
    tp = throughput(t0_ns, windows, iterations)
    if tp is not None:
        out["throughput"] = tp
    lat = latency(iterations)
    if lat is not None:
        out["latency_ms"] = lat
    tel = telemetry(t0_ns, samples)
    if tel is not None:
        out["telemetry"] = tel
    if trace is not None:
        cur = current(t0_ns, trace[1], trace[2])
        if cur is not None:
            out["current_a"] = cur
    if frames is not None and load_doc:
        ld = load(t0_ns, frames, load_doc, bin_s)
        if ld is not None:
            out["load"] = ld
    return out
