"""The result's ``load{}`` from a run's frames (``arrivals.npy`` rows:
arrival_ns, start_ns, end_ns, burst; -1 start = dropped): counts, rates,
queueing delay and, for a duty cycle, one record per burst.

Figures are computed from the frames alone, so the counts a summary states
and the file agree by construction (tests check them against each other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.spec import LoadSpec
from agent.stats import nearest_rank

FIRST_N = 5  # "the first inferences after idle" of a burst (as agent/power/analysis.py)
MAX_BURSTS = 1000  # listed in the result; the count is always complete


def _percentiles(ms: np.ndarray) -> dict[str, float | None]:
    s = np.sort(ms)
    return {
        "p50": nearest_rank(s, 50.0) if s.size else None,
        "p99": nearest_rank(s, 99.0) if s.size else None,
        "max": float(s[-1]) if s.size else None,
    }


def summarize(
    frames: np.ndarray,
    load: LoadSpec,
    start_ns: int,
    end_ns: int,
    max_consecutive_misses: int,
    burst_starts_ns: list[int] | None = None,
    first_n: int = FIRST_N,
) -> dict[str, Any]:
    """``load{pattern, rate_hz, deadline_ms, late_policy, frames, completed,
    late, dropped, miss_rate, max_consecutive_misses, achieved_rate_hz,
    queue_delay_ms{p50,p99,max}, service_ms{p50,p99,max}, busy_share,
    idle_share, bursts[]}``; burst records carry ``start_ns`` (the result
    assembly adds ``t_s`` from run start)."""
    f = np.asarray(frames, dtype=np.int64).reshape(-1, 4)
    done = f[f[:, 1] >= 0]
    span_s = max(end_ns - start_ns, 1) / 1e9
    deadline = load.deadline_ns
    late_mask = (done[:, 2] - done[:, 0] > deadline) if deadline is not None else np.zeros(len(done), bool)
    n_late, n_dropped = int(late_mask.sum()), int(len(f) - len(done))
    service = (done[:, 2] - done[:, 1]) / 1e6
    busy_s = float(service.sum()) / 1e3
    out: dict[str, Any] = {
        "pattern": load.pattern,
        "rate_hz": load.rate_hz or load.poisson_hz,
        "poisson": load.poisson_hz is not None,
        "seed": load.seed if load.poisson_hz is not None else None,
        "burst": _burst_text(load),
        "deadline_ms": deadline / 1e6 if deadline is not None else None,
        "late_policy": load.late_policy,
        "frames": int(len(f)),
        "completed": int(len(done)),
        "late": n_late,
        "dropped": n_dropped,
        "miss_rate": (n_late + n_dropped) / len(f) if len(f) else None,
        "max_consecutive_misses": int(max_consecutive_misses),
        "achieved_rate_hz": len(done) / span_s,
        "queue_delay_ms": _percentiles((done[:, 1] - done[:, 0]) / 1e6),
        "service_ms": _percentiles(service),
        "busy_share": min(1.0, busy_s / span_s),
        "idle_share": max(0.0, 1.0 - busy_s / span_s),
        "bursts": [],
    }
    if load.burst_off_s is not None:
        out["bursts"], out["burst_count"] = bursts(f, late_mask, done, burst_starts_ns, first_n)
    return out


def _burst_text(load: LoadSpec) -> str | None:
    if load.burst_off_s is None:
        return None
    on = f"{load.burst_on_n}x" if load.burst_on_n is not None else f"{load.burst_on_s:g}s"
    return f"{on}/{load.burst_off_s:g}s"


def bursts(
    f: np.ndarray, late_mask: np.ndarray, done: np.ndarray, starts_ns: list[int] | None, first_n: int
) -> tuple[list[dict[str, Any]], int]:
    """One record per burst: its scheduled start, inferences, the p50 service
    time of its first ``first_n`` inferences against the rest (the warm-up
    cost after idle), and its misses."""
    ids = np.unique(f[:, 3][f[:, 3] >= 0])
    late_by_burst = np.bincount(done[:, 3][late_mask], minlength=int(ids.max()) + 1 if ids.size else 0)
    out = []
    for b in ids[:MAX_BURSTS]:
        rows = f[f[:, 3] == b]
        ran = rows[rows[:, 1] >= 0]
        svc = np.sort((ran[:, 2] - ran[:, 1]) / 1e6) if ran.size else np.empty(0)
        first = np.sort((ran[:first_n, 2] - ran[:first_n, 1]) / 1e6)
        steady = np.sort((ran[first_n:, 2] - ran[first_n:, 1]) / 1e6)
        start = int(starts_ns[b]) if starts_ns and b < len(starts_ns) else int(rows[0, 0])
        out.append(
            {
                "index": int(b),
                "start_ns": start,
                "first_inference_ns": int(ran[0, 1]) if ran.size else None,
                "end_ns": int(ran[-1, 2]) if ran.size else None,
                "frames": int(len(rows)),
                "inferences": int(len(ran)),
                "first_n": int(min(first_n, len(ran))),
                "first_p50_ms": nearest_rank(first, 50.0) if first.size else None,
                "steady_p50_ms": nearest_rank(steady, 50.0) if steady.size else None,
                "p50_ms": nearest_rank(svc, 50.0) if svc.size else None,
                "late": int(late_by_burst[b]) if b < len(late_by_burst) else 0,
                "dropped": int(len(rows) - len(ran)),
                "misses": int(len(rows) - len(ran))
                + (int(late_by_burst[b]) if b < len(late_by_burst) else 0),
            }
        )
    return out, int(ids.size)


def place_bursts(load: dict[str, Any], t0_ns: int) -> None:
    """Give each burst its ``t_s`` (seconds from run start, the result's origin)."""
    for b in load.get("bursts") or []:
        b["t_s"] = round((b["start_ns"] - t0_ns) / 1e9, 6)


def miss_rate_gate(load: dict[str, Any], max_miss_rate: float | None) -> dict[str, Any] | None:
    """The ``miss_rate`` gate (``--max-miss-rate``): None when no limit was set."""
    if max_miss_rate is None:
        return None
    rate = load.get("miss_rate")
    if rate is None:
        return {"name": "miss_rate", "passed": False, "message": "no frame was scheduled"}
    passed = rate <= max_miss_rate
    misses = int(load.get("late") or 0) + int(load.get("dropped") or 0)
    verb = "within" if passed else "over"
    msg = (
        f"{misses:,} of {int(load.get('frames') or 0):,} frames late or dropped ({100 * rate:.2f}%), "
        f"{verb} the {100 * max_miss_rate:g}% allowed"
    )
    return {"name": "miss_rate", "passed": passed, "message": msg}
