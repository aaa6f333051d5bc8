"""The hybrid bisection: the first cut whose hybrid (device up to the cut,
float after it) fails the task gate.

Known ends: the float model (no cut) passes, the device model as it is (the
last cut and beyond) fails; each probe is one device run, so a search over N
cut points takes ceil(log2(N + 1)) hybrid runs after the two end runs. It
assumes a failure, once reached, persists further down the graph (the device
carries more of the graph at every later cut); a probe that breaks this is
said in ``notes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Probe:
    cut: int | None  # None: the float model; len(cuts): the device model as it is
    passed: bool
    value: float | None  # the gate's figure (the first failing gate's, else the first gate's)
    metric: str
    run_id: str = ""


@dataclass
class Outcome:
    verdict: int | None  # the cut index; None: the device model passes, nothing to find
    probes: list[Probe] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def planned_runs(n_cuts: int) -> int:
    """Device runs of a search over ``n_cuts`` at most: the float and device
    ends, then the bisection's probes (one fewer when it ends early)."""
    return 2 + math.ceil(math.log2(n_cuts + 1))


def bisect(n_cuts: int, score: Callable[[int | None], Probe]) -> Outcome:
    """``score(cut)`` runs the hybrid at ``cut`` (None: float; n_cuts: the
    device model) and says whether it passes the gate."""
    out = Outcome(None)
    full = score(n_cuts)
    out.probes.append(full)
    base = score(None)
    out.probes.append(base)
    if full.passed:
        out.notes.append("the device model passes the gate: there is no failing cut to find")
        return out
    if not base.passed:
        out.notes.append("the float model itself fails the gate on these samples: every cut fails")
        return out
    lo, hi = -1, n_cuts  # lo passes (float), hi fails (the device model)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        p = score(mid)
        out.probes.append(p)
        if p.passed:
            lo = mid
        else:
            hi = mid
    # hi == n_cuts: only the device model as a whole fails (its outputs are no cut's twin)
    out.verdict = min(hi, n_cuts - 1)
    return out
