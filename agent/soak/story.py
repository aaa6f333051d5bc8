"""The soak's verdict and its one-sentence summary, from one computation.

:func:`judge` decides the verdict and picks the facts the sentence cites (the
window, the throttle event, the sensors); :func:`sentence` only formats that
record. A summary can therefore never name a percentage from one window and a
time from another, nor say "held" beside a ``degraded`` verdict: both come
from the same ``headline{}``, which the result keeps (``soak.headline``) so a
reader or a test can check the sentence against it. A rate-driven soak
(``--rate``) is judged on holding the rate instead (:func:`judge_rate`,
:func:`rate_sentence`): the same one-record rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.soak.attribution import fmt_time

# sustained/cold at or above this is "stable" (or "throttling" when clocks moved)
STABLE_RATIO = 0.95

HELD = ("stable", "throttling")
FELL = ("throttled", "degraded")


def sensors_seen(windows: Sequence[dict[str, Any]], samples: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """Whether any window or sample carried a clock / a temperature: without
    them "no clock throttling" would be a claim nothing checked."""
    recs = [*windows, *samples]
    return {
        "clocks": any(r.get("clocks_hz") for r in recs),
        "temps": any(r.get("temps_c") for r in recs),
    }


def verdict_of(ratio: float | None, events: Sequence[dict], attributions: Sequence[dict], n_full: int) -> str:
    if ratio is None or n_full < 2:
        return "insufficient"
    if ratio >= STABLE_RATIO:
        return "throttling" if events else "stable"  # clocks may move without costing throughput
    caused = any(a.get("domain") for a in attributions)
    return "throttled" if caused or events else "degraded"


def _cite_attr(a: dict[str, Any]) -> dict[str, Any]:
    keep = ("t_s", "drop_pct", "cause", "domain", "from_hz", "to_hz", "event_t_s", "zone", "temp_c")
    return {k: a.get(k) for k in keep}


def _cite_event(e: dict[str, Any]) -> dict[str, Any]:
    return {k: e.get(k) for k in ("t_s", "domain", "from_hz", "to_hz", "zone", "temp_c")}


def judge(
    cold_ips: float | None,
    sustained_ips: float | None,
    events: Sequence[dict[str, Any]],
    attributions: Sequence[dict[str, Any]],
    n_full: int,
    duration_s: float,
    sensors: dict[str, bool],
) -> dict[str, Any]:
    """The ``headline{}``: the verdict and every fact the sentence states.

    ``window`` is the attribution the sentence cites: for a loss, the window
    the clock explains first (else the first window below cold); for a run
    that held, its worst dip. ``event`` is the throttle event it cites.
    """
    ratio = sustained_ips / cold_ips if cold_ips and sustained_ips is not None else None
    verdict = verdict_of(ratio, events, attributions, n_full)
    h: dict[str, Any] = {
        "verdict": verdict,
        "cold_ips": cold_ips,
        "sustained_ips": sustained_ips,
        "ratio": ratio,
        "n_full": n_full,
        "duration_s": duration_s,
        "sensors": dict(sensors),
        "window": None,
        "event": None,
    }
    if verdict in HELD and attributions:
        h["window"] = _cite_attr(max(attributions, key=lambda a: a["drop_pct"]))
    if verdict == "throttling":
        h["event"] = _cite_event(events[0])
    caused = [a for a in attributions if a.get("domain")]
    if verdict == "throttled":
        if caused:
            h["window"] = _cite_attr(caused[0])
        else:
            h["event"] = _cite_event(events[0])  # clocks fell, but no slow window blames them
    if verdict == "degraded" and attributions:
        h["window"] = _cite_attr(attributions[0])
    return h


def _mhz(hz: float) -> str:
    return f"{hz / 1e6:.0f}"


def _no_sensors(sensors: dict[str, bool]) -> str:
    return "no clock or temperature sensors" if not sensors.get("temps") else "no clock sensors"


def _hot(rec: dict[str, Any]) -> str:
    return f" with {rec['zone']} at {rec['temp_c']:.0f} °C" if rec.get("temp_c") is not None else ""


def sentence(h: dict[str, Any]) -> str:
    """The summary sentence of a ``headline{}`` (see docs/usage.md for examples)."""
    verdict, ratio = h["verdict"], h["ratio"]
    if ratio is None:
        return "no complete soak window was recorded"
    cold, sus = h["cold_ips"], h["sustained_ips"]
    dur = fmt_time(float(h.get("duration_s") or 0.0))
    ips = f"{cold:.1f} → {sus:.1f} ips"
    sensors = h.get("sensors") or {}
    w, e = h.get("window"), h.get("event")
    if verdict == "insufficient":
        return f"too few complete windows in {dur} to judge (cold {cold:.1f}, sustained {sus:.1f} ips)"
    if verdict in HELD:
        text = f"throughput held at {100 * ratio:.0f}% of cold ({ips}) over {dur}"
        if e:
            text += (
                f"; {e['domain']} clock dropped {_mhz(e['from_hz'])}→{_mhz(e['to_hz'])} MHz "
                f"at {fmt_time(e['t_s'])} without costing throughput"
            )
        elif not sensors.get("clocks"):
            text += f"; the board exposes {_no_sensors(sensors)}, so throttling was not checked"
        elif not (w and w.get("domain")):
            text += " with no clock throttling"
        if w:
            why = f" with {w['domain']} clock at {_mhz(w['to_hz'])} MHz" if w.get("domain") else ""
            text += f"; its worst window, at {fmt_time(w['t_s'])}, ran {w['drop_pct']:.0f}% below cold{why}"
        return text
    text = f"throughput fell {100 * (1 - ratio):.0f}% ({ips})"
    if w and w.get("domain"):
        at = w["event_t_s"] if w.get("event_t_s") is not None else w["t_s"]
        return (
            f"{text} from {fmt_time(at)} when {w['domain']} clock dropped "
            f"{_mhz(w['from_hz'])}→{_mhz(w['to_hz'])} MHz{_hot(w)}"
        )
    if e:
        return (
            f"{text} over {dur}; {e['domain']} clock dropped {_mhz(e['from_hz'])}→{_mhz(e['to_hz'])} MHz "
            f"at {fmt_time(e['t_s'])}{_hot(e)}"
        )
    if w:
        text += f", first window below cold at {fmt_time(w['t_s'])} ({w['drop_pct']:.0f}% down)"
    else:
        text += f" over {dur}"
    if sensors.get("clocks"):
        return f"{text}, with no clock drop to explain it"
    return f"{text}; the board exposes {_no_sensors(sensors)} to explain it"


# -- a rate-driven soak (--rate / --rate-poisson): did it hold the rate? --------
RATE_VERDICTS = ("held", "missed")


def _minutes(t_s: float) -> str:
    """30 min, 12 min 20 s, 45 s, 1 h 02 min: the rate sentence's durations."""
    t = int(round(t_s))
    if t < 60:
        return f"{t} s"
    if t < 3600:
        return f"{t // 60} min" + (f" {t % 60} s" if t % 60 else "")
    return f"{t // 3600} h {(t % 3600) // 60:02d} min"


def judge_rate(
    windows: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    rate_hz: float,
    unit: str,
    max_miss_rate: float | None,
    duration_s: float,
    sensors: dict[str, bool],
    window_s: float,
) -> dict[str, Any]:
    """The ``headline{}`` of a rate-driven soak: held when misses (late +
    dropped frames) stay within ``max_miss_rate`` (none allowed without it).
    ``onset_t_s`` is when misses began: the start of the first window whose
    miss rate is over the allowance; ``event`` is the clock drop that explains
    it: the last throttle event before the end of that window."""
    frames = sum(int(w.get("frames") or 0) for w in windows)
    late = sum(int(w.get("late") or 0) for w in windows)
    dropped = sum(int(w.get("dropped") or 0) for w in windows)
    allowed = float(max_miss_rate or 0.0)
    miss_rate = (late + dropped) / frames if frames else None
    verdict = "held" if miss_rate is not None and miss_rate <= allowed else "missed"
    h: dict[str, Any] = {
        "mode": "rate",
        "verdict": verdict if frames else "insufficient",
        "rate_hz": rate_hz,
        "unit": unit,
        "frames": frames,
        "late": late,
        "dropped": dropped,
        "misses": late + dropped,
        "miss_rate": miss_rate,
        "max_miss_rate": max_miss_rate,
        "duration_s": duration_s,
        "sensors": dict(sensors),
        "onset_t_s": None,
        "event": None,
    }
    if verdict != "missed" or not frames:
        return h
    onset = next((w for w in windows if (w.get("miss_rate") or 0) > allowed), None)
    onset = onset or next(w for w in windows if (w.get("late") or 0) + (w.get("dropped") or 0))
    h["onset_t_s"] = float(onset["t_s"])
    end = float(onset["t_s"]) + float(onset.get("dur_s") or window_s)
    before = [e for e in events if e["t_s"] <= end]
    if before:
        h["event"] = _cite_event(before[-1])
    return h


def rate_sentence(h: dict[str, Any]) -> str:
    """The summary sentence of a rate-driven soak's ``headline{}``."""
    frames, misses = h["frames"], h["misses"]
    rate = f"{h['rate_hz']:.1f} {h['unit']}" if h.get("rate_hz") else "the pattern"
    dur = _minutes(float(h.get("duration_s") or 0.0))
    if h["verdict"] == "insufficient":
        return f"no frame was scheduled in {dur}"
    if h["verdict"] == "held":
        if not misses:
            return f"held {rate} for {dur}: 0 of {frames:,} frames late"
        allowed = 100 * float(h["max_miss_rate"] or 0)
        return (
            f"held {rate} for {dur}: {misses:,} of {frames:,} frames late or dropped "
            f"({100 * h['miss_rate']:.1f}%, within {allowed:g}%)"
        )
    text = f"missed {misses:,} of {frames:,} frames ({100 * h['miss_rate']:.1f}%)"
    text += f" after {_minutes(h['onset_t_s'])}"
    e = h.get("event")
    if e:
        hot = f" at {e['zone']} {e['temp_c']:.0f} °C" if e.get("temp_c") is not None else ""
        return f"{text}, when {e['domain']} {_mhz(e['from_hz'])}→{_mhz(e['to_hz'])} MHz{hot}"
    sensors = h.get("sensors") or {}
    if sensors.get("clocks"):
        return f"{text}, with no clock drop to explain it"
    return f"{text}; the board exposes {_no_sensors(sensors)} to explain it"
