"""Lost-sample accounting for a capture: each run of samples a meter knows
it lost (``Meter.sample_gaps``), put on the agent clock, and how sure the
total is. ``dropped_samples`` is the sum of the runs' sizes, never negative;
``dropped_uncertainty`` the sum of their bounds (samples either side; None
when one is unbounded: a PPK2 gap the counter names only modulo 64);
``dropped_estimated`` whether any size rests on host timing rather than on
the meter's own counter or timestamps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.power.clockfit import ClockFit

MAX_LISTED = 200  # runs listed in power.json; all of them are counted


def on_agent_clock(gaps: list[tuple[int, dict[str, Any]]], fits: dict[int, ClockFit]) -> list[dict[str, Any]]:
    """The meters' lost-sample runs on the agent clock (``t_ns``), in order."""
    out = []
    for seg, g in gaps:
        fit = fits.get(seg)
        t_dev = int(g["t_dev_ns"])
        out.append(
            {
                "t_ns": int(fit.apply(np.array([t_dev]))[0]) if fit is not None else None,
                "samples": int(g["samples"]),
                "uncertainty": None if g.get("uncertainty") is None else int(g["uncertainty"]),
                "estimated": bool(g.get("estimated")),
                **({"counter": int(g["counter"])} if "counter" in g else {}),
            }
        )
    return out


def bounds(gaps: list[dict[str, Any]]) -> dict[str, Any]:
    """How sure ``dropped_samples`` is: the sum of the runs' uncertainties
    (None when one is unbounded), whether any size rests on host timing, and
    how many runs there were."""
    unc = [g["uncertainty"] for g in gaps]
    return {
        "dropped_uncertainty": None if any(u is None for u in unc) else sum(unc),
        "dropped_estimated": any(g["estimated"] for g in gaps),
        "sample_gap_count": len(gaps),
    }
