"""Throttle events and drop attribution: which clock fell, when, and how hot
the board was, so a slow soak comes with its reason.

Inputs are the soak's window records and the telemetry samples taken under
load, each with ``t_s`` (seconds from the measured phase start).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# a clock this far below its reference counts as dropped (DVFS jitter is smaller)
CLOCK_TOL = 0.03
# at most this many events are kept; a clock hunting for hours is still one story
MAX_EVENTS = 500


def hottest(temps: dict[str, Any]) -> tuple[str | None, float | None]:
    """(zone, °C) of the hottest zone; window temps are {zone: {max, mean}}."""
    best: tuple[str | None, float | None] = (None, None)
    for zone, v in (temps or {}).items():
        t = v.get("max") if isinstance(v, dict) else v
        if isinstance(t, (int, float)) and (best[1] is None or t > best[1]):
            best = (zone, float(t))
    return best


def find_throttle_events(
    samples: Sequence[dict[str, Any]],
    windows: Sequence[dict[str, Any]],
    expected_hz: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Each clock drop below its reference while under load.

    The reference of a domain is the profile's expected clock when given, else
    the highest clock observed under load. A drop is a step down of more than
    CLOCK_TOL from the previous reading that lands below the reference.
    Telemetry samples give the moment to the sample; without samples the
    windows' min clocks stand in.
    """
    expected_hz = expected_hz or {}
    from_samples = _series_from_samples(samples)
    events = _steps(from_samples or _series_from_windows(windows), expected_hz)
    if from_samples:
        # old samples are thinned (1 Hz) by the sampler; a short dip it dropped still
        # shows in the window's min clock, taken at full rate while the soak ran
        events += _unexplained_window_drops(windows, events, expected_hz, from_samples)
    events.sort(key=lambda e: (e["t_s"], e["domain"]))
    return events[:MAX_EVENTS]


def _steps(series: dict[str, list[tuple[float, float, dict]]], expected_hz: dict[str, float]) -> list[dict]:
    events: list[dict[str, Any]] = []
    for domain, points in series.items():
        ref = expected_hz.get(domain) or max(v for _, v, _ in points)
        prev: float | None = expected_hz.get(domain)
        for t_s, v, temps in points:
            if prev is not None and v < prev * (1 - CLOCK_TOL) and v < ref * (1 - CLOCK_TOL):
                zone, temp = hottest(temps)
                events.append(
                    {
                        "t_s": round(t_s, 3),
                        "domain": domain,
                        "from_hz": int(prev),
                        "to_hz": int(v),
                        "zone": zone,
                        "temp_c": None if temp is None else round(temp, 1),
                    }
                )
            prev = v
    return events


def _unexplained_window_drops(
    windows: Sequence[dict[str, Any]],
    events: list[dict[str, Any]],
    expected_hz: dict[str, float],
    series: dict[str, list[tuple[float, float, dict]]],
) -> list[dict[str, Any]]:
    """Events for windows whose min clock fell below the reference where no
    sample-based event of that domain is near (within a minute)."""
    out: list[dict[str, Any]] = []
    for domain, points in _series_from_windows(windows).items():
        sample_max = max((v for _, v, _ in series.get(domain, [])), default=0.0)
        ref = expected_hz.get(domain) or max(sample_max, max(v for _, v, _ in points))
        prev_low = False
        for t_s, v, temps in points:
            low = v < ref * (1 - CLOCK_TOL)
            near = any(e["domain"] == domain and abs(e["t_s"] - t_s) <= 60.0 for e in events)
            if low and not prev_low and not near:
                zone, temp = hottest(temps)
                ev = {"t_s": round(t_s, 3), "domain": domain, "from_hz": int(ref), "to_hz": int(v)}
                out.append({**ev, "zone": zone, "temp_c": None if temp is None else round(temp, 1)})
            prev_low = low
    return out


def _series_from_samples(samples: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float, dict]]]:
    out: dict[str, list[tuple[float, float, dict]]] = {}
    for s in samples:
        for domain, hz in (s.get("clocks_hz") or {}).items():
            if isinstance(hz, (int, float)) and hz > 0:
                out.setdefault(domain, []).append((float(s["t_s"]), float(hz), s.get("temps_c") or {}))
    return out


def _series_from_windows(windows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float, dict]]]:
    out: dict[str, list[tuple[float, float, dict]]] = {}
    for w in windows:
        for domain, c in (w.get("clocks_hz") or {}).items():
            hz = c.get("min") if isinstance(c, dict) else c
            if isinstance(hz, (int, float)) and hz > 0:
                out.setdefault(domain, []).append((float(w["t_s"]), float(hz), w.get("temps_c") or {}))
    return out


def _clock(c: Any, key: str) -> float | None:
    v = c.get(key) if isinstance(c, dict) else c
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def _baselines(cold: Sequence[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Cold per-domain mean clock and per-zone max temperature."""
    clocks: dict[str, list[float]] = {}
    temps: dict[str, float] = {}
    for w in cold:
        for d, c in (w.get("clocks_hz") or {}).items():
            v = _clock(c, "mean")
            if v is not None:
                clocks.setdefault(d, []).append(v)
        for z, t in (w.get("temps_c") or {}).items():
            v = t.get("max") if isinstance(t, dict) else t
            if isinstance(v, (int, float)):
                temps[z] = max(temps.get(z, v), float(v))
    return {d: sum(v) / len(v) for d, v in clocks.items()}, temps


def attribute_drops(
    windows: Sequence[dict[str, Any]],
    cold: Sequence[dict[str, Any]],
    cold_ips: float,
    events: Sequence[dict[str, Any]],
    threshold: float,
) -> list[dict[str, Any]]:
    """Link every window that fell more than ``threshold`` below cold to the
    clock and temperature changes that coincide with it.

    The blamed domain is the one whose clock in that window is furthest below
    its cold level (beyond CLOCK_TOL); the throttle event that took it there
    (the latest one up to the window's end) gives the moment and the from/to.
    No such domain: the cause is "unexplained" (contention, memory, I/O...).
    """
    if cold_ips <= 0:
        return []
    base_clk, base_temp = _baselines(cold)
    out: list[dict[str, Any]] = []
    for w in windows:
        ips = float(w["throughput_ips"])
        drop = 1.0 - ips / cold_ips
        if drop <= threshold:
            continue
        t0 = float(w["t_s"])
        t1 = t0 + float(w.get("dur_s") or 0.0)
        changes = []
        for d, c in (w.get("clocks_hz") or {}).items():
            now = _clock(c, "min")
            ref = base_clk.get(d)
            if now is None or ref is None:
                continue
            rel = 1.0 - now / ref
            if rel > CLOCK_TOL:
                changes.append(
                    {"domain": d, "from_hz": int(ref), "to_hz": int(now), "drop_pct": round(100 * rel, 1)}
                )
        changes.sort(key=lambda c: -c["drop_pct"])
        zone, temp = hottest(w.get("temps_c") or {})
        rec: dict[str, Any] = {
            "t_s": t0,
            "throughput_ips": ips,
            "drop_pct": round(100 * drop, 1),
            "cause": "clock" if changes else "unexplained",
            "domain": None,
            "from_hz": None,
            "to_hz": None,
            "event_t_s": None,
            "clock_changes": changes,
            "zone": zone,
            "temp_c": temp,
            "temp_rise_c": None
            if zone is None or zone not in base_temp
            else round(temp - base_temp[zone], 1),
        }
        if changes:
            top = changes[0]
            rec.update(domain=top["domain"], from_hz=top["from_hz"], to_hz=top["to_hz"])
            ev = [e for e in events if e["domain"] == top["domain"] and e["t_s"] <= t1 + 1e-6]
            if ev:
                e = ev[-1]
                rec.update(
                    event_t_s=e["t_s"],
                    from_hz=e["from_hz"],
                    to_hz=e["to_hz"],
                    zone=e["zone"],
                    temp_c=e["temp_c"],
                )
        out.append(rec)
    return out


def fmt_time(t_s: float) -> str:
    """14m20s, 45s, 1h02m: the way the summary sentence says when."""
    t = int(round(t_s))
    if t < 60:
        return f"{t}s"
    if t < 3600:
        return f"{t // 60}m{t % 60:02d}s"
    return f"{t // 3600}h{(t % 3600) // 60:02d}m"
