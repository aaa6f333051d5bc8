"""Turn a capture (power.bin + power.json) and the runner's iteration
timestamps into the result's ``power{}``: means, peaks, energy per inference,
transients aligned to inference starts, first-inferences vs steady peak, and
the supply budget check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.rundir import measured_rows
from agent.telemetry.sampler import input_power_w

DEFAULT_K = 6.0  # transient threshold: median + k x robust spread (MAD as sigma)
FIRST_N = 5  # "first inferences after idle"
MAX_TRANSIENTS = 500  # listed in the result; the count is always complete
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VDD_IN_TOTAL")


def span_mask(t: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """True for samples inside any [start, end] span (spans may touch or overlap)."""
    if not starts.shape[0]:
        return np.zeros(t.shape[0], dtype=bool)
    a = np.searchsorted(t, starts, side="left")
    b = np.searchsorted(t, ends, side="right")
    delta = np.zeros(t.shape[0] + 1, dtype=np.int64)
    np.add.at(delta, a, 1)
    np.add.at(delta, b, -1)
    return np.cumsum(delta[:-1]) > 0


def integrate(t_ns: np.ndarray, y: np.ndarray, t0: int, t1: int) -> float:
    """Trapezoid integral of y over [t0, t1] (seconds), interpolating at the edges."""
    if t1 <= t0 or t_ns.shape[0] < 2:
        return 0.0
    a = np.searchsorted(t_ns, t0, side="right")
    b = np.searchsorted(t_ns, t1, side="left")
    y0, y1 = np.interp([t0, t1], t_ns, y)
    tt = np.concatenate(([t0], t_ns[a:b], [t1])).astype(np.float64)
    yy = np.concatenate(([y0], y[a:b], [y1]))
    return float(np.sum(0.5 * (yy[1:] + yy[:-1]) * np.diff(tt)) / 1e9)


def robust_threshold(current_a: np.ndarray, k: float = DEFAULT_K) -> float:
    med = float(np.median(current_a))
    mad = float(np.median(np.abs(current_a - med))) * 1.4826
    # a noiseless trace has MAD 0: keep the threshold above quantisation steps
    spread = max(mad, abs(med) * 0.01, 1e-4)
    return med + k * spread


def find_transients(
    t_ns: np.ndarray, current_a: np.ndarray, threshold_a: float, period_ns: float
) -> list[tuple[int, int]]:
    """Sample index ranges [i, j] (inclusive) above the threshold."""
    above = current_a > threshold_a
    if not above.any():
        return []
    idx = np.flatnonzero(above)
    merge_ns = max(3.0 * period_ns, 100_000.0)
    # A transient ends at a sample below the line; a dip shorter than
    # merge_ns (noise on the plateau) does not end it.
    dip_ns = t_ns[idx[1:]] - t_ns[idx[:-1]]
    breaks = np.flatnonzero((np.diff(idx) > 1) & (dip_ns > merge_ns))
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]]))
    return list(zip(starts.tolist(), ends.tolist(), strict=False))


def voltage(bus: np.ndarray, supply_v: float | None) -> tuple[np.ndarray | None, str | None]:
    """Volts per sample and where they came from: the meter's bus voltage where
    it has one (gaps filled with the supply, else the bus mean), else the
    profile's supply; (None, None) with neither."""
    if not np.isnan(bus).all():
        fill = supply_v if supply_v is not None else float(np.nanmean(bus))
        return np.where(np.isnan(bus), fill, bus), "meter"
    if supply_v is not None:
        return np.full(bus.shape[0], float(supply_v)), "profile"
    return None, None


def window_power(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    t0_ns: int,
    t1_ns: int,
    supply_v: float | None = None,
    min_coverage: float = 0.5,
) -> dict[str, Any] | None:
    """Time-weighted mean current and power over [t0_ns, t1_ns] from
    ``Capture.window()`` parts (one per meter segment). None when the meter's
    samples cover less than ``min_coverage`` of the window (unplugged, not yet
    streaming): the caller falls back to another source."""
    if t1_ns <= t0_ns:
        return None
    q = e = covered = 0.0
    have_w = True
    for t, cur, bus in parts:
        a, b = max(t0_ns, int(t[0])), min(t1_ns, int(t[-1]))
        if b <= a:
            continue
        covered += (b - a) / 1e9
        q += integrate(t, cur, a, b)
        volts, _ = voltage(bus, supply_v)
        if volts is None:
            have_w = False
        else:
            e += integrate(t, cur * volts, a, b)
    if covered < min_coverage * (t1_ns - t0_ns) / 1e9:
        return None
    return {
        "current_a": q / covered,
        "power_w": e / covered if have_w else None,
        "coverage": covered / ((t1_ns - t0_ns) / 1e9),
    }


def analyze(
    trace: tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray],
    iterations: np.ndarray | None,
    budget_w: float | None = None,
    supply_v: float | None = None,
    transient_a: float | None = None,
    run_start_ns: int | None = None,
    first_n: int = FIRST_N,
    k: float = DEFAULT_K,
) -> dict[str, Any]:
    """``power{}`` from a trace (``agent.power.trace.load_trace``) and the run's
    iteration rows (start_ns, end_ns, phase)."""
    meta, t, cur, bus = trace
    t0 = int(run_start_ns if run_start_ns is not None else meta.get("start_ns", 0))
    out: dict[str, Any] = {
        "source": meta.get("source"),
        "sample_rate_hz": meta.get("sample_rate_hz"),
        "samples": int(cur.shape[0]),
        "dropped_samples": int(meta.get("dropped_samples", 0)),
        # an older power.json has no bounds: its count came from the counter alone
        "dropped_uncertainty": meta.get("dropped_uncertainty", 0),
        "dropped_estimated": bool(meta.get("dropped_estimated", False)),
        "sample_gaps": [
            {
                "t_s": None if g.get("t_ns") is None else (g["t_ns"] - t0) / 1e9,
                "samples": g["samples"],
                "uncertainty": g.get("uncertainty"),
                "estimated": bool(g.get("estimated")),
            }
            for g in meta.get("sample_gaps", [])
        ],
        "garbage": int(meta.get("garbage", 0)),
        "mean_a": None,
        "peak_a": None,
        "mean_w": None,
        "peak_w": None,
        "energy_per_inference_j": None,
        "transients": [],
        "transient_count": 0,
        "transient_threshold_a": None,
        "budget_w": budget_w,
        "over_budget": None,
        "first_inferences_n": first_n,
        "first_inferences_peak_a": None,
        "steady_peak_a": None,
        "voltage_source": None,
        "partial": bool(meta.get("partial", False)),
        "gaps": [
            {
                "t_s": (g["start_ns"] - t0) / 1e9,
                "duration_s": ((g["end_ns"] or g["start_ns"]) - g["start_ns"]) / 1e9,
                "reason": g.get("reason"),
            }
            for g in meta.get("gaps", [])
        ],
        "clock_fit": meta.get("clock_fit"),
    }
    if cur.shape[0] == 0:
        return out
    order = np.argsort(t, kind="stable")  # segments are in order; this guards a fit that folds back
    if not (np.diff(t) >= 0).all():
        t, cur, bus = t[order], cur[order], bus[order]

    volts, out["voltage_source"] = voltage(bus, supply_v)
    power = cur * volts if volts is not None else None

    it = np.asarray(iterations if iterations is not None else np.empty((0, 3)), dtype=np.int64).reshape(-1, 3)
    it = it[np.argsort(it[:, 0], kind="stable")] if it.shape[0] else it
    measured = measured_rows(it)
    if measured.shape[0]:
        w0, w1 = int(measured[:, 0].min()), int(measured[:, 1].max())
    else:
        w0, w1 = int(t[0]), int(t[-1])
    dur_s = (w1 - w0) / 1e9
    in_w = (t >= w0) & (t <= w1)
    if dur_s > 0 and t.shape[0] > 1 and in_w.any():
        out["mean_a"] = integrate(t, cur, w0, w1) / dur_s
        if power is not None:
            energy = integrate(t, power, w0, w1)
            out["mean_w"] = energy / dur_s
            if measured.shape[0]:
                out["energy_per_inference_j"] = energy / measured.shape[0]
    else:
        out["mean_a"] = float(cur.mean())
        if power is not None:
            out["mean_w"] = float(power.mean())
    out["peak_a"] = float(cur.max())
    if power is not None:
        out["peak_w"] = float(power.max())
        if budget_w is not None:
            out["over_budget"] = bool(out["peak_w"] > budget_w)

    period_ns = float(np.median(np.diff(t))) if t.shape[0] > 1 else 0.0
    thr = float(transient_a) if transient_a is not None else robust_threshold(cur, k)
    out["transient_threshold_a"] = thr
    runs = find_transients(t, cur, thr, period_ns)
    out["transient_count"] = len(runs)
    starts_ns = it[:, 0] if it.shape[0] else None
    tr = []
    for i, j in runs[:MAX_TRANSIENTS]:
        ts = int(t[i])
        off = None
        if starts_ns is not None:
            pos = int(np.searchsorted(starts_ns, ts))
            cand = [p for p in (pos - 1, pos) if 0 <= p < starts_ns.shape[0]]
            near = min(cand, key=lambda p: abs(ts - int(starts_ns[p])))
            off = (ts - int(starts_ns[near])) / 1e6
        tr.append(
            {
                "t_s": (ts - t0) / 1e9,
                "peak_a": float(cur[i : j + 1].max()),
                "duration_ms": (int(t[j]) - ts + period_ns) / 1e6,
                "offset_from_inference_start_ms": off,
            }
        )
    out["transients"] = tr

    if it.shape[0]:
        n = min(first_n, it.shape[0])
        first = span_mask(t, it[:n, 0], it[:n, 1])
        if first.any():
            out["first_inferences_peak_a"] = float(cur[first].max())
        rest = measured[~np.isin(measured[:, 0], it[:n, 0])] if measured.shape[0] else measured
        steady = span_mask(t, rest[:, 0], rest[:, 1]) if rest.shape[0] else np.zeros(0, bool)
        if steady.any():
            out["steady_peak_a"] = float(cur[steady].max())
    return out


def cross_check(
    power: dict[str, Any],
    telemetry_samples: list[dict[str, Any]],
    rail: str | None = None,
    window_ns: tuple[int, int] | None = None,
    tolerance_pct: float = 15.0,
    input_rails: list[str] | None = None,
) -> dict[str, Any] | None:
    """Compare the meter's mean power with the board's own input power (Jetson
    INA3221) over the same window. The board side is ``rail`` if given, else
    the sum of the profile's ``input_rails`` (the board power the sampler and
    the soak windows use; AGX Orin has no single input channel), else a guess
    at the single module-input rail (``VDD_IN`` and kin). Samples count when
    they carry every rail summed. None when either side is missing."""
    meter_w = power.get("mean_w")
    if meter_w is None:
        return None
    names: set[str] = set()
    for s in telemetry_samples:
        names.update((s.get("rails") or {}).keys())
    if rail is not None:
        summed = [rail] if rail in names else []
    elif input_rails:
        summed = list(input_rails) if set(input_rails) <= names else []
    else:
        # no profile: the module's total input, VDD_IN (Orin, Xavier NX) or
        # POM_5V_IN (Nano, TX2); never a sub-rail like VIN_SYS_5V0 alone
        ins = [n for n in INPUT_RAILS if n in names] or sorted(n for n in names if n.upper().endswith("_IN"))
        summed = ins[:1]
    if not summed:
        return None
    vals = []
    for s in telemetry_samples:
        rails = s.get("rails") or {}
        if window_ns is not None and not window_ns[0] <= s.get("t_ns", 0) <= window_ns[1]:
            continue
        if all(rails.get(r, {}).get("w") is not None for r in summed):
            vals.append(input_power_w(s, summed))
    if not vals:
        return None
    board_w = float(np.mean(vals))
    diff = (meter_w - board_w) / board_w * 100.0 if board_w else None
    return {
        "rail": "+".join(summed),
        "rails": summed,
        "meter_mean_w": float(meter_w),
        "board_mean_w": board_w,
        "samples": len(vals),
        "diff_pct": diff,
        "agree": diff is not None and abs(diff) <= tolerance_pct,
    }


def attribute_bursts(
    power: dict[str, Any],
    trace: tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray],
    frames: np.ndarray,
    bursts: list[dict[str, Any]],
    run_start_ns: int,
    supply_v: float | None = None,
    first_n: int = FIRST_N,
) -> dict[str, Any]:
    """A duty cycle against the meter (issue 15): each transient gets the
    ``burst_index`` it fell in and its offset from that burst's first
    inference (``offset_from_burst_ms``); each burst record gets the peak
    current of its first ``first_n`` inferences (``peak_a``), its transient
    count and its energy (``energy_j``, first inference start to last end).
    Returns ``power.bursts{count, with_spike, repeats, first_peak_a{min, max},
    peak_w, budget_w, over_budget, summary}``: whether the first-inference
    spike comes back at every burst, and how high against the budget."""
    _, t, cur, bus = trace
    f = np.asarray(frames, dtype=np.int64).reshape(-1, 4)
    done = f[f[:, 1] >= 0]
    volts, _ = voltage(bus, supply_v)
    firsts = np.array([b.get("first_inference_ns") or b["start_ns"] for b in bursts], dtype=np.int64)
    ends = np.array([b.get("end_ns") or b["start_ns"] for b in bursts], dtype=np.int64)
    for b in bursts:
        b["transients"] = 0
    # a transient belongs to the last burst that started at or before it (a
    # spike can lead the first inference by a little: the burst's own wake-up)
    for tr in power.get("transients") or []:
        t_ns = run_start_ns + int(round(tr["t_s"] * 1e9))
        k = int(np.searchsorted(firsts, t_ns, side="right")) - 1
        if k < 0 or t_ns > ends[k]:
            tr["burst_index"], tr["offset_from_burst_ms"] = None, None
            continue
        tr["burst_index"] = int(bursts[k]["index"])
        tr["offset_from_burst_ms"] = (t_ns - int(firsts[k])) / 1e6
    counts: dict[int, int] = {}
    for tr in power.get("transients") or []:
        if tr.get("burst_index") is not None:
            counts[tr["burst_index"]] = counts.get(tr["burst_index"], 0) + 1
    peaks: list[float] = []
    peak_w: list[float] = []
    for b in bursts:
        b["transients"] = counts.get(int(b["index"]), 0)
        rows = done[done[:, 3] == b["index"]][:first_n]
        mask = span_mask(t, rows[:, 1], rows[:, 2]) if rows.size else np.zeros(t.shape[0], bool)
        b["peak_a"] = float(cur[mask].max()) if mask.any() else None
        if b["peak_a"] is not None:
            peaks.append(b["peak_a"])
            if volts is not None:
                peak_w.append(float((cur[mask] * volts[mask]).max()))
        if volts is not None and b.get("end_ns") and b.get("first_inference_ns"):
            b["energy_j"] = integrate(t, cur * volts, int(b["first_inference_ns"]), int(b["end_ns"]))
        else:
            b["energy_j"] = None
    covered = [b for b in bursts if b["peak_a"] is not None]
    spiked = [b for b in covered if b["transients"] > 0]
    budget = power.get("budget_w")
    out: dict[str, Any] = {
        "count": len(covered),
        "with_spike": len(spiked),
        "repeats": bool(covered) and len(spiked) == len(covered),
        "first_peak_a": {"min": min(peaks), "max": max(peaks)} if peaks else None,
        "peak_w": max(peak_w) if peak_w else None,
        "budget_w": budget,
        "over_budget": None if budget is None or not peak_w else bool(max(peak_w) > budget),
    }
    out["summary"] = _burst_sentence(out)
    return out


def _burst_sentence(s: dict[str, Any]) -> str:
    if not s["count"]:
        return "no burst ran while the meter recorded"
    text = (
        f"the first-inference spike repeats at every burst ({s['with_spike']} of {s['count']})"
        if s["repeats"]
        else f"a spike at {s['with_spike']} of {s['count']} bursts"
    )
    text += f", up to {s['first_peak_a']['max']:.3f} A"
    if s["peak_w"] is not None:
        text += f" ({s['peak_w']:.2f} W"
        if s["budget_w"]:
            verb = "over" if s["over_budget"] else "within"
            text += f", {100 * s['peak_w'] / s['budget_w']:.0f}% of the {s['budget_w']:g} W budget: {verb} it"
        text += ")"
    return text
