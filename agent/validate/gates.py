"""Validate gates (``--min-cosine``, ``--max-nmse``, ``--min-sqnr-db``,
``--min-top1-agreement``, ``--min-mask-iou``...), global (``*``) or per output,
against ``validation.outputs[]``. Each gate reads the output's summary
figure: cosine its worst sample, NMSE its worst sample, SQNR its mean,
agreements and IoU their mean. A failed gate's message names the output, the
metric, the value and the worst sample.
"""

from __future__ import annotations

from agent.spec import GATES, ValidateSpec


def evaluate(validation: dict, vspec: ValidateSpec) -> list[dict]:
    """``[{name, passed, message, output, metric, value, threshold, worst_sample}]``."""
    outputs = {o["name"]: o for o in validation.get("outputs") or []}
    worst = validation.get("worst") or []
    gates = []
    for gate, per_output in vspec.gates.items():
        metric = GATES[gate][0]
        for target, threshold in per_output.items():
            names = [n for n, o in outputs.items() if metric in o] if target == "*" else [target]
            if not names:
                gates.append(_missing(gate, metric, target, "no output has this metric", threshold))
            for name in names:
                gates.append(_one(gate, name, outputs.get(name), threshold, worst))
    return gates


def _one(gate: str, name: str, o: dict | None, threshold: float, worst: list[dict]) -> dict:
    metric, higher_better = GATES[gate]
    if o is None:
        return _missing(gate, metric, name, "the model has no such output", threshold)
    if metric not in o:
        return _missing(gate, metric, name, "not computed for this output", threshold)
    value = o[metric]
    if value is None:
        return _missing(gate, metric, name, "undefined (an all-zero reference?)", threshold)
    passed = value >= threshold if higher_better else value <= threshold
    w = next((r for r in worst if r["output"] == name and r["metric"] == metric), None)
    op = ">=" if higher_better else "<="
    msg = f"{name}: {metric} {value:.4g} {'meets' if passed else 'misses'} {op} {threshold:.10g}"
    if w is not None and w["value"] is not None:
        msg += f" (worst sample {w['sample']}: {w['value']:.4g})"
    return {
        "name": gate,
        "passed": bool(passed),
        "message": msg,
        "output": name,
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "worst_sample": None if w is None else w["sample"],
    }


def _missing(gate: str, metric: str, output: str, why: str, threshold: float) -> dict:
    return {
        "name": gate,
        "passed": False,
        "message": f"{output}: {metric} {why}",
        "output": output,
        "metric": metric,
        "value": None,
        "threshold": threshold,
        "worst_sample": None,
    }
