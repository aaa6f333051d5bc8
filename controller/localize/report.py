"""localize's report: the JSON document (``verdict{tensor, node, op,
partition, metric, value}``, ``probes[]``, ``tensors[]``) and its terminal
rendering."""

from __future__ import annotations

import argparse
from typing import Any

from controller.localize.graph import Cut
from controller.localize.runner import partition_of
from controller.localize.search import Outcome


def num(x: Any, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def document(
    args: argparse.Namespace,
    cuts: list[Cut],
    outcome: Outcome,
    results: dict,
    planned: int,
    figures: dict[str, dict] | None = None,
    tap_runs: int = 0,
) -> dict:
    figures = figures or {}
    device_result = results.get(len(cuts))
    verdict = None
    notes = list(outcome.notes)
    if not outcome.probes and figures:
        verdict = _sqnr_drop(cuts, figures)
        if verdict is not None:
            notes.append(
                "no gate or task metric given: the verdict is the largest SQNR drop along the graph, "
                "which may not be where the task's answers are lost"
            )
    if outcome.verdict is not None:
        c = cuts[outcome.verdict]
        probe = next((p for p in outcome.probes if p.cut == outcome.verdict), None)
        if probe is None:  # only the device model as a whole failed
            probe = outcome.probes[0]
        verdict = {
            "tensor": c.tensor,
            "device_tensor": c.device_tensor,
            "node": c.node,
            "op": c.op,
            "depth": c.depth,
            "partition": partition_of(device_result, c.node),
            "metric": probe.metric,
            "value": probe.value,
            "run_id": probe.run_id,
            "method": "hybrid bisection: the first cut whose hybrid fails the gate",
            "passing_cut_before": _before(cuts, outcome),
        }
    return {
        "kind": "localize",
        "model": str(args.model),
        "float": str(args.float),
        "cut_points": len(cuts),
        "device_runs": {
            "planned": planned,
            "made": len(outcome.probes) + tap_runs,
            "tap_runs": tap_runs,
            "hybrid_runs": len(outcome.probes),
        },
        "memory_bound": {"tap_mib_per_model_per_sample": getattr(args, "tap_mib", None)},
        "verdict": verdict,
        "probes": [
            {
                "cut": p.cut,
                "tensor": None
                if p.cut is None
                else "(device model)"
                if p.cut >= len(cuts)
                else cuts[p.cut].tensor,
                "passed": p.passed,
                "metric": p.metric,
                "value": p.value,
                "run_id": p.run_id,
            }
            for p in outcome.probes
        ],
        "tensors": [
            {
                "tensor": c.tensor,
                "node": c.node,
                "op": c.op,
                "depth": c.depth,
                "qdq": c.qdq,
                "device_tensor": c.device_tensor,
                **_judged(figures.get(c.tensor)),
            }
            for c in cuts
        ],  # fmt: skip
        "notes": notes,
    }


def _judged(f: dict | None) -> dict:
    """A tensor's figures, and whether the device departs from the host's
    simulation (device arithmetic) or agrees with it (quantization error)."""
    if not f:
        return {}
    out = dict(f)
    d, h = f.get("sqnr_db"), f.get("host_sqnr_db")
    if d is not None and h is not None:
        out["source"] = "device arithmetic" if h - d > 3.0 else "quantization error"
    return out


def _sqnr_drop(cuts: list[Cut], figures: dict[str, dict]) -> dict | None:
    prev, best, drop = None, None, 0.0
    for c in cuts:
        v = (figures.get(c.tensor) or {}).get("sqnr_db")
        if v is None:
            continue
        if prev is not None and prev - v > drop:
            best, drop = c, prev - v
        prev = v
    if best is None:
        return None
    return {
        "tensor": best.tensor, "device_tensor": best.device_tensor, "node": best.node, "op": best.op,
        "depth": best.depth, "partition": {}, "metric": "sqnr_drop_db", "value": drop, "run_id": "",
        "method": "largest SQNR drop (no gate given)", "passing_cut_before": None,
    }  # fmt: skip


def _before(cuts: list[Cut], outcome: Outcome) -> str | None:
    passing = [p.cut for p in outcome.probes if p.passed and p.cut is not None and p.cut < len(cuts)]
    best = max(passing, default=None)
    return None if best is None else cuts[best].tensor


def render(doc: dict) -> str:
    lines = [
        f"localize {doc['model']} against {doc['float']}: {doc['cut_points']} cut points, "
        f"{doc['device_runs']['made']} device runs (at most {doc['device_runs']['planned']} stated up front)"
    ]
    v = doc["verdict"]
    if v is None:
        lines.append("verdict: none")
    else:
        part = v["partition"]
        where = f" on {part.get('provider')}" if part.get("provider") else ""
        why = (
            f"the first cut whose hybrid fails {v['metric']}"
            if v["method"].startswith("hybrid")
            else "the largest SQNR drop along the graph, no gate given"
        )
        lines.append(
            f"verdict: {v['tensor']} (node {v['node']}, {v['op']}{where}): {why} ({num(v['value'])})"
        )
        if v.get("passing_cut_before"):
            lines.append(f"  the last passing cut before it: {v['passing_cut_before']}")
    for t in doc["tensors"]:
        if "sqnr_db" in t:
            break
    else:
        t = None
    if t is not None:
        lines.append("tensors (SQNR dB vs float, device / host QDQ):")
        for t in doc["tensors"]:
            if "sqnr_db" in t:
                mark = "  <- verdict" if v and t["tensor"] == v["tensor"] else ""
                lines.append(
                    f"  {t['depth']:4d} {t['op']:<14} {num(t['sqnr_db'], '.1f'):>6} / "
                    f"{num(t.get('host_sqnr_db'), '.1f'):>6}  {t['tensor']}{mark}"
                )
    for n in doc["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)
