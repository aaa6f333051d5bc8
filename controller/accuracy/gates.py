"""Accuracy gates of validate, read on the controller after the run (mAP and
accuracy need the labels and pycocotools, which the board has not):
``--min-map50``, ``--min-map``, ``--min-accuracy``, ``--max-map50-drop``,
``--max-accuracy-drop``, global (``*``) or per output (``OUTPUT=X``).

``map50``/``map`` are against ``--labels`` when given, else against the
reference model's boxes (agreement); ``accuracy`` is top-1 against the
labels; a drop is the reference's own figure on the labels minus the
device's. A failed gate's message names the output, the metric, the value and
the worst sample, as the agent's gates do.
"""

from __future__ import annotations

# gate -> (the figure it reads, True when higher is better)
ACCURACY_GATES = {
    "min_map50": ("map50", True),
    "min_map": ("map", True),
    "min_accuracy": ("accuracy", True),
    "max_map50_drop": ("map50_drop", False),
    "max_accuracy_drop": ("accuracy_drop", False),
}

# --help of each gate (runopts.add_validation_options)
HELP = {
    "min_map50": "exit 3 when AP50 is below X (--boxes; against --labels, else the reference's boxes)",
    "min_map": "exit 3 when mAP@[.5:.95] is below X (--boxes; against --labels, else the reference's boxes)",
    "min_accuracy": "exit 3 when top-1 accuracy against --labels class ids is below X",
    "max_map50_drop": "exit 3 when the reference's AP50 on --labels minus the device's is above X",
    "max_accuracy_drop": "exit 3 when the reference's top-1 on --labels minus the device's is above X",
}


def from_args(args: object) -> dict[str, dict[str, float]]:
    """The accuracy gates a command's parsed options set: gate -> {output or '*': X}."""
    gates: dict[str, dict[str, float]] = {}
    for gate in ACCURACY_GATES:
        for out, value in getattr(args, gate, []) or []:
            gates.setdefault(gate, {})[out] = value
    return gates


def evaluate(figures: dict[str, dict], gates: dict[str, dict[str, float]]) -> list[dict]:
    """``figures``: output -> {metric: value, "worst": {metric: (sample, value)}};
    the gates' records, as ``agent/validate/gates.py`` writes them."""
    out = []
    for gate, per_output in gates.items():
        metric, higher = ACCURACY_GATES[gate]
        for target, threshold in per_output.items():
            names = [n for n, f in figures.items() if metric in f] if target == "*" else [target]
            if not names:
                why = (
                    "needs --labels" if metric.endswith("_drop") or metric == "accuracy" else "needs --boxes"
                )
                out.append(_record(gate, target, metric, None, threshold, False, f"{target}: {metric} {why}"))
            for name in names:
                f = figures.get(name) or {}
                value = f.get(metric)
                if value is None:
                    msg = f"{name}: {metric} not computed for this output"
                    out.append(_record(gate, name, metric, None, threshold, False, msg))
                    continue
                passed = value >= threshold if higher else value <= threshold
                op = ">=" if higher else "<="
                msg = f"{name}: {metric} {value:.4g} {'meets' if passed else 'misses'} {op} {threshold:.10g}"
                worst = (f.get("worst") or {}).get(metric)
                if worst is not None:
                    msg += f" (worst sample {worst[0]}: {worst[1]:.4g})"
                out.append(_record(gate, name, metric, value, threshold, passed, msg, worst))
    return out


def _record(gate: str, output: str, metric: str, value: float | None, threshold: float, passed: bool,
            message: str, worst: tuple[int, float] | None = None) -> dict:  # fmt: skip
    return {
        "name": gate,
        "passed": bool(passed),
        "message": message,
        "output": output,
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "worst_sample": None if worst is None else worst[0],
    }
