"""VALID or INVALID, as MLPerf LoadGen says it: a bench or soak result is valid
when its measured phase lasted the minimum duration, ran the minimum number
of queries, and has enough samples for the percentile it is judged by.

"Enough samples" is LoadGen's early-stopping rule (mlcommons/inference,
``loadgen/early_stopping.cc`` and ``PerformanceSummary::EarlyStopping`` in
``loadgen/results.cc``, SingleStream case), at its constants: confidence 0.99,
tolerance 0. The count of queries over a latency bound is binomial; with ``t``
queries over it, ``h`` under it is enough when the odds of seeing ``t`` or
fewer overs in ``h + t`` queries, were the true percentile above the bound,
are at most ``1 - c``: ``BetaRegularized[p, h, 1 + t] <= 1 - c``, i.e. the
binomial CDF ``P(Binom(h + t, 1 - p) <= t)``. A percentile is supported once
``N >= h_min(t=1) + 1`` queries ran (LoadGen: "Need to process at least N
queries for early stopping"); its early-stopping estimate is then the
``t``-th highest latency, ``t`` the most overs that ``N`` queries still
allow (LoadGen: "Would discard t - 1 highest latency queries").

Pure Python (math only): the agent assembles results without numpy here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

CONFIDENCE = 0.99  # LoadGen's early-stopping confidence
TOLERANCE = 0.0  # LoadGen's early-stopping tolerance
# the defaults a result is judged by; options change them (docs/usage.md)
DEFAULT_MIN_DURATION_S = 10.0  # the bench's own default --duration
DEFAULT_MIN_QUERIES = 100  # the bench's own default --min-iterations
DEFAULT_PERCENTILE = 90.0  # LoadGen SingleStream's target_latency_percentile
SYNTHETIC_NOTE = "synthetic (random) inputs: data-dependent cost such as NMS is not measured"


def _walk_start(n: int, q: float) -> tuple[int, float]:
    """(x0, log pmf(x0)): where to start summing P(Binom(n, q) = x). Terms 12
    standard deviations below the mean are under e^-72 of the total and are
    skipped, so a sum costs O(sqrt(n)), not O(n)."""
    x0 = max(0, math.floor(n * q - 12.0 * math.sqrt(n * q * (1.0 - q)) - 1))
    log_pmf = (
        math.lgamma(n + 1) - math.lgamma(x0 + 1) - math.lgamma(n - x0 + 1)
        + x0 * math.log(q) + (n - x0) * math.log1p(-q)
    )  # fmt: skip
    return x0, log_pmf


def _log_add(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return hi if lo == -math.inf else hi + math.log1p(math.exp(lo - hi))


def _log_binom_cdf(n: int, t: int, q: float) -> float:
    """log P(Binom(n, q) <= t), summed in log space (n up to millions underflows)."""
    if q <= 0.0 or t >= n:
        return 0.0
    x, log_pmf = _walk_start(n, q)
    if x > t:
        return -math.inf  # every term up to t is below e^-72
    acc = log_pmf
    ratio = math.log(q) - math.log1p(-q)
    while x < t:
        log_pmf += math.log(n - x) - math.log(x + 1) + ratio
        acc = _log_add(acc, log_pmf)
        x += 1
    return acc


def _passes(h: int, t: int, p: float, c: float, d: float) -> bool:
    """LoadGen's ``odds(h, t, p, d) <= 1 - c``."""
    return _log_binom_cdf(h + t, t, 1.0 - (p - d)) <= math.log(1.0 - c)


def min_passing(t: int, p: float, c: float = CONFIDENCE, d: float = TOLERANCE) -> int:
    """LoadGen's ``MinPassingQueriesFinder(t, p, d, c)``: the fewest queries under
    the bound that, beside ``t`` over it, pass at confidence ``c``."""
    hi = max(1, math.ceil(math.log(1.0 - c) / math.log(p - d)))
    while not _passes(hi, t, p, c, d):
        hi *= 2
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _passes(mid, t, p, c, d):
            hi = mid
        else:
            lo = mid + 1
    return lo


def min_queries(percentile: float, c: float = CONFIDENCE) -> int:
    """Queries a ``percentile`` (90, 99, 99.9) needs before LoadGen's early
    stopping can support it: ``h_min(t=1) + 1``."""
    return min_passing(1, percentile / 100.0, c) + 1


def overs_allowed(n: int, percentile: float, c: float = CONFIDENCE) -> int:
    """The most queries over the bound ``n`` queries allow (LoadGen's ``t``),
    0 when ``n`` is too few: the largest ``t`` with ``P(Binom(n, 1-p) <= t) <= 1 - c``."""
    q = 1.0 - percentile / 100.0
    limit = math.log(1.0 - c)
    if n < min_queries(percentile, c):
        return 0
    # walk the CDF up while it stays under 1 - c: O(sqrt(n)) from the walk's start
    x, log_pmf = _walk_start(n, q)
    acc = log_pmf
    ratio = math.log(q) - math.log1p(-q)
    if acc > limit:
        return 0
    while x < n:
        nxt = log_pmf + math.log(n - x) - math.log(x + 1) + ratio
        new_acc = _log_add(acc, nxt)
        if new_acc > limit:
            break
        log_pmf, acc, x = nxt, new_acc, x + 1
    return x


def percentile_support(sorted_ms: Sequence[float], percentiles: dict[str, float]) -> dict[str, dict]:
    """``{p99: {min_queries, supported, estimate_ms}}`` for the latencies of one
    measured phase, sorted ascending; the estimate is the early-stopping one
    (None when not supported)."""
    n = len(sorted_ms)
    out: dict[str, dict] = {}
    for key, pct in percentiles.items():
        need = min_queries(pct)
        t = overs_allowed(n, pct) if n >= need else 0
        out[key] = {
            "percentile": pct,
            "min_queries": need,
            "supported": n >= need and t >= 1,
            "estimate_ms": float(sorted_ms[n - t]) if n >= need and t >= 1 else None,
        }
    return out


def percentile_key(pct: float) -> str:
    """90 -> p90, 99.9 -> p999 (the latency_ms keys)."""
    text = f"{pct:g}".replace(".", "")
    return f"p{text}"


def assess(doc: dict, spec: Any) -> dict:
    """``validity{valid, reasons[], notes[], ...}`` of a completed bench or soak
    result; ``spec`` is its RunSpec (``spec.validity`` may be None: defaults)."""
    v = spec.validity
    min_s = v.min_duration_s if v is not None else DEFAULT_MIN_DURATION_S
    min_n = v.min_queries if v is not None else DEFAULT_MIN_QUERIES
    pct = v.percentile if v is not None else DEFAULT_PERCENTILE
    reasons: list[str] = []
    notes: list[str] = []
    duration = float(doc.get("duration_s") or 0.0)
    queries = int(doc.get("iterations") or 0)
    if duration < min_s:
        reasons.append(f"measured {duration:.1f} s < minimum duration {min_s:g} s")
    if queries < min_n:
        reasons.append(f"{queries} queries < minimum {min_n}")
    support = dict(doc.get("latency_support") or {})
    key = percentile_key(pct)
    need = min_queries(pct)
    if key not in support:
        support[key] = {"percentile": pct, "min_queries": need, "supported": queries >= need}
    if not support[key].get("supported"):
        reasons.append(f"{key} needs {need} queries for early stopping, ran {queries}")
    unsupported = [k for k, s in support.items() if not s.get("supported") and k != key]
    if unsupported:
        notes.append(f"not supported by {queries} queries (shown marked): {', '.join(unsupported)}")
    synthetic = not spec.inputs_sha256
    if synthetic:
        notes.append(SYNTHETIC_NOTE)
    return {
        "valid": not reasons,
        "reasons": reasons,
        "notes": notes,
        "rule": "mlperf-loadgen early stopping (confidence 0.99, tolerance 0)",
        "min_duration_s": min_s,
        "min_queries": min_n,
        "percentile": pct,
        "percentiles": support,
        "synthetic_inputs": synthetic,
    }


def verdict_line(validity: dict | None) -> str | None:
    """LoadGen's line: ``Result is: VALID`` / ``Result is: INVALID (reasons)``."""
    if not validity:
        return None
    if validity.get("valid"):
        return "Result is: VALID"
    return f"Result is: INVALID ({'; '.join(validity.get('reasons') or ['unknown'])})"
