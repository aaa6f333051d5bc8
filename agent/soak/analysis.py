"""Soak analysis: the windows of a soak (and the telemetry samples taken under
load) -> the result's ``soak{}``.

Pure functions over plain dicts, so the same code judges a 30-minute soak on a
board and a 30-second one in a test. Window records (docs/internals.md):

    {t_s, dur_s, iterations, throughput_ips, p50_ms, p99_ms,
     temps_c{zone: {max, mean}}, clocks_hz{domain: {min, mean}}, power_w}

``t_s`` is the window's start in seconds from run start (the executor's
``t0_ns``; without it, the first window's start). Executor windows that carry
``t_start_ns``/``t_end_ns`` are normalised by :func:`window_record`; throttle
events use the same origin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agent.soak.attribution import attribute_drops, find_throttle_events
from agent.soak.story import judge, judge_rate, rate_sentence, sensors_seen, sentence

# issue 4: cold = first minute (or first 10% of a shorter run), sustained =
# last 5 minutes (or last 20%).
COLD_SPAN_S = 60.0
COLD_FRACTION = 0.10
SUSTAINED_SPAN_S = 300.0
SUSTAINED_FRACTION = 0.20
# a window this far below cold counts as a drop to attribute
DROP_THRESHOLD = 0.10
# steady state: throughput changes less than this fraction across a trailing span
STEADY_BAND = 0.03
# a window shorter than this share of window_s (the tail) is left out of stability
PARTIAL_WINDOW = 0.5
LOAD_KEYS = ("frames", "late", "dropped", "miss_rate")


def window_record(raw: dict[str, Any], t0_ns: int) -> dict[str, Any]:
    """An executor window (worker message + sampler.window()) -> the result record."""
    t_start = int(raw["t_start_ns"])
    t_end = int(raw.get("t_end_ns", t_start))
    rec = {
        "t_s": round((t_start - t0_ns) / 1e9, 6),
        "dur_s": round((t_end - t_start) / 1e9, 6),
        "iterations": int(raw.get("iterations", 0)),
        "throughput_ips": float(raw.get("throughput_ips", 0.0)),
        "p50_ms": raw.get("p50_ms"),
        "p99_ms": raw.get("p99_ms"),
        "temps_c": dict(raw.get("temps_c") or {}),
        "clocks_hz": dict(raw.get("clocks_hz") or {}),
        "power_w": raw.get("power_w"),
        "power_source": raw.get("power_source"),  # meter | board, None without power
    }
    for k in LOAD_KEYS:  # a load pattern's frames in the window
        if k in raw:
            rec[k] = raw[k]
    return rec


def normalise_windows(windows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int | None]:
    """Records sorted by time, deduplicated by start; also the t0_ns when raw."""
    if not windows:
        return [], None
    t0 = None
    if all("t_start_ns" in w for w in windows):
        first = min(windows, key=lambda w: int(w["t_start_ns"]))
        t0 = int(first["t_start_ns"])
        if isinstance(first.get("t_s"), (int, float)):
            # the executor already put t_s on its clock (run start): keep that origin
            t0 -= int(round(float(first["t_s"]) * 1e9))
        recs = [window_record(w, t0) for w in windows]
    else:
        recs = [dict(w) for w in windows]
    seen: dict[float, dict[str, Any]] = {}
    for r in recs:
        seen[round(float(r["t_s"]), 6)] = r  # a re-delivered window replaces, never doubles
    return [seen[k] for k in sorted(seen)], t0


def _dur(w: dict[str, Any], window_s: float) -> float:
    d = w.get("dur_s")
    return float(d) if d else window_s


def span_throughput(windows: Sequence[dict[str, Any]], window_s: float) -> float | None:
    """Iterations / time over the windows: a mean weighted by window length."""
    if not windows:
        return None
    total_t = sum(_dur(w, window_s) for w in windows)
    if total_t <= 0:
        return None
    # weighted by length (= iterations / time): a short tail window counts for little
    return sum(float(w["throughput_ips"]) * _dur(w, window_s) for w in windows) / total_t


def split_spans(
    windows: Sequence[dict[str, Any]], window_s: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cold windows and the sustained windows, by the issue's rule."""
    if not windows:
        return [], []
    start = float(windows[0]["t_s"])
    end = float(windows[-1]["t_s"]) + _dur(windows[-1], window_s)
    total = max(end - start, 1e-9)
    cold_span = min(COLD_SPAN_S, COLD_FRACTION * total)
    sus_span = min(SUSTAINED_SPAN_S, SUSTAINED_FRACTION * total)
    # a window belongs to a span when its midpoint does; never leave a span empty
    cold = [w for w in windows if float(w["t_s"]) + _dur(w, window_s) / 2 - start <= cold_span]
    sus = [w for w in windows if end - (float(w["t_s"]) + _dur(w, window_s) / 2) <= sus_span]
    return cold or [windows[0]], sus or [windows[-1]]


def steady_state(windows: Sequence[dict[str, Any]], window_s: float, band: float = STEADY_BAND) -> dict:
    """First time from which the throughput slope stays inside a band.

    The slope is a least-squares fit over a trailing span of k windows (about a
    minute, at least 3); it is inside the band when the change it predicts
    across that span is under ``band`` of the span's mean throughput.
    """
    n = len(windows)
    k = max(3, min(int(math.ceil(COLD_SPAN_S / window_s)), n // 3 or 3))
    out: dict[str, Any] = {
        "reached": False,
        "t_s": None,
        "throughput_ips": None,
        "band": band,
        "span_windows": k,
        "slope_ips_per_min": None,
    }
    if n < k:
        return out
    inside: list[bool] = []
    slopes: list[float] = []
    for i in range(k - 1, n):
        seg = windows[i - k + 1 : i + 1]
        xs = [float(w["t_s"]) for w in seg]
        ys = [float(w["throughput_ips"]) for w in seg]
        slope = _slope(xs, ys)
        mean = sum(ys) / len(ys)
        change = abs(slope) * (xs[-1] - xs[0] + _dur(seg[-1], window_s))
        slopes.append(slope)
        inside.append(mean > 0 and change <= band * mean)
    out["slope_ips_per_min"] = round(slopes[-1] * 60.0, 6)
    # the earliest trailing span from which every later span is inside the band
    first = None
    for j in range(len(inside) - 1, -1, -1):
        if not inside[j]:
            break
        first = j
    if first is not None:
        start_idx = first  # span j covers windows j .. j+k-1
        out["reached"] = True
        out["t_s"] = float(windows[start_idx]["t_s"])
        out["throughput_ips"] = span_throughput(windows[start_idx:], window_s)
    return out


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def analyze_soak(
    windows: Sequence[dict[str, Any]],
    samples: Sequence[dict[str, Any]] | None,
    spec: Any,
    profile: Any = None,
    t0_ns: int | None = None,
) -> dict[str, Any]:
    """The result's ``soak{}`` from the run's windows and telemetry samples.

    ``spec`` is the RunSpec (or its dict); ``profile`` an agent.profiles.Profile,
    a dict or None (its clocks may name an ``expected_hz`` per domain).
    ``t0_ns`` is the origin of ``t_s``; by default the executor's (from the
    windows' ``t_s`` and ``t_start_ns``) or else the first window's start.
    """
    soak_spec = _soak_spec(spec)
    window_s = float(soak_spec.get("window_s") or 10.0)
    recs, raw_t0 = normalise_windows(windows)
    if t0_ns is None:
        t0_ns = raw_t0
    out: dict[str, Any] = {
        "window_s": window_s,
        "windows": recs,
        "ambient_c": soak_spec.get("ambient_c"),
        "enclosure": soak_spec.get("enclosure"),
        "target_ips": soak_spec.get("target_ips"),
        "cold_throughput_ips": None,
        "sustained_throughput_ips": None,
        "sustained_ratio": None,
        "stability": None,
        "time_to_throttle_s": None,
        "throttle_events": [],
        "attributions": [],
        "steady_state": steady_state([], window_s),
        "target_met": None,
        "verdict": "insufficient",
        "headline": None,
        "summary": "no complete soak window was recorded",
    }
    if not recs:
        return out

    cold, sustained = split_spans(recs, window_s)
    cold_ips = span_throughput(cold, window_s)
    sus_ips = span_throughput(sustained, window_s)
    full = [w for w in recs if _dur(w, window_s) >= PARTIAL_WINDOW * window_s] or recs
    rates = [float(w["throughput_ips"]) for w in full]
    stability = (min(rates) / max(rates)) if max(rates) > 0 else None

    end_s = float(recs[-1]["t_s"]) + _dur(recs[-1], window_s)
    load_samples = _load_samples(samples or [], t0_ns, float(recs[0]["t_s"]), end_s)
    events = find_throttle_events(load_samples, recs, _expected_clocks(profile))
    attributions = attribute_drops(full, cold, cold_ips or 0.0, events, DROP_THRESHOLD)

    duration_s = end_s - float(recs[0]["t_s"])
    # one computation for the verdict and every figure the sentence cites
    headline = judge(
        cold_ips, sus_ips, events, attributions, len(full), duration_s, sensors_seen(recs, load_samples)
    )
    load = _load_spec(spec)
    if load.get("rate_hz") or load.get("poisson_hz"):
        # a rate-driven soak is judged on holding its rate, not on peak throughput
        headline = judge_rate(
            recs,
            events,
            float(load.get("rate_hz") or load.get("poisson_hz")),
            "FPS" if load.get("rate_hz") else "QPS",
            load.get("max_miss_rate"),
            duration_s,
            sensors_seen(recs, load_samples),
            window_s,
        )
        summary = rate_sentence(headline)
    else:
        summary = sentence(headline)
    target = soak_spec.get("target_ips")
    out.update(
        cold_throughput_ips=_r(cold_ips),
        sustained_throughput_ips=_r(sus_ips),
        sustained_ratio=_r(_ratio(cold_ips, sus_ips)),
        stability=_r(stability),
        time_to_throttle_s=events[0]["t_s"] if events else None,
        throttle_events=events,
        attributions=attributions,
        steady_state=steady_state(full, window_s),
        target_met=None if target is None or sus_ips is None else bool(sus_ips >= float(target)),
        duration_s=_r(duration_s),
        verdict=headline["verdict"],
        headline=headline,
        summary=summary,
    )
    return out


def _ratio(cold: float | None, sustained: float | None) -> float | None:
    return sustained / cold if cold and sustained is not None else None


def _load_spec(spec: Any) -> dict[str, Any]:
    load = spec.get("load") if isinstance(spec, dict) else getattr(spec, "load", None)
    if load is None:
        return {}
    return (
        load
        if isinstance(load, dict)
        else {k: getattr(load, k) for k in ("rate_hz", "poisson_hz", "max_miss_rate")}
    )


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def _soak_spec(spec: Any) -> dict[str, Any]:
    if spec is None:
        return {}
    soak = spec.get("soak") if isinstance(spec, dict) else getattr(spec, "soak", None)
    if soak is None:
        return {}
    if isinstance(soak, dict):
        return soak
    return {k: getattr(soak, k) for k in ("window_s", "ambient_c", "enclosure", "target_ips")}


def _expected_clocks(profile: Any) -> dict[str, float]:
    """Per-domain expected clock (Hz) from a profile's ``clocks.<d>.expected_hz``."""
    if profile is None:
        return {}
    clocks = profile.get("clocks") if isinstance(profile, dict) else getattr(profile, "clocks", None)
    out: dict[str, float] = {}
    for name, c in (clocks or {}).items():
        if isinstance(c, dict) and isinstance(c.get("expected_hz"), (int, float)):
            out[name] = float(c["expected_hz"])
    return out


def _load_samples(
    samples: Sequence[dict[str, Any]], t0_ns: int | None, start_s: float, end_s: float
) -> list[dict[str, Any]]:
    """Samples taken while the soak ran, each with its ``t_s`` from t0."""
    if t0_ns is None:
        return []
    out = []
    for s in samples:
        t = s.get("t_ns")
        if not isinstance(t, int):
            continue
        t_s = (t - t0_ns) / 1e9
        if start_s <= t_s <= end_s:
            out.append({**s, "t_s": t_s})
    out.sort(key=lambda s: s["t_s"])
    return out


def soak_gate(soak: dict[str, Any]) -> dict[str, Any] | None:
    """The ``soak_target`` gate (``--target-ips``): None when no target was set."""
    target = soak.get("target_ips")
    if target is None:
        return None
    sus = soak.get("sustained_throughput_ips")
    if sus is None:
        return {"name": "soak_target", "passed": False, "message": "no sustained throughput was measured"}
    passed = sus >= float(target)
    verb = "meets" if passed else "misses"
    msg = f"sustained {sus:.2f} ips {verb} the target of {float(target):g} ips"
    return {"name": "soak_target", "passed": passed, "message": msg}
