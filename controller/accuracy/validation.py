"""validate's accuracy step on the controller: before the run, the labels are
read and checked and the reference's outputs decoded here (a bad file or a
tensor that does not fit its decoder fails before anything is pushed); after
it, the device's boxes (``boxes.npz``) or class scores (``outputs.npz``) are
fetched and scored, against the labels and against the reference, into
``validation.detection`` / ``validation.accuracy``, with the accuracy gates.

The reference's own accuracy on the labels is computed here from its outputs,
so every validate with labels reports before, after and the loss.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent import rundir as files
from agent.errors import BadInput
from agent.spec import ValidateSpec
from agent.validate import boxfile
from agent.validate.decode import Detections, decode, input_hw_of
from agent.validate.metrics import is_class_scores
from agent.validate.reference import Reference
from controller.accuracy import classification, detection
from controller.accuracy import gates as accuracy_gates
from controller.extras import INSTALL_HINT, have, need


@dataclass
class Plan:
    vspec: ValidateSpec
    gates: dict[str, dict[str, float]]
    input_hw: tuple[int, int] | None
    reference_dets: dict[str, list[Detections]] = field(default_factory=dict)
    truth: dict | None = None  # COCO ground truth
    class_labels: list[int] | None = None
    map_scored: bool = True  # False: pycocotools missing (board-only install), no mAP asked for
    reference_scores: dict[str, np.ndarray] = field(default_factory=dict)  # class-score outputs [S, C]

    @property
    def needs_outputs(self) -> bool:
        return self.class_labels is not None


def prepare(
    ref: Reference, vspec: ValidateSpec, labels: str | None, gates: dict[str, dict[str, float]]
) -> Plan:
    """Everything checkable before the run; BadInput (exit 2, nothing stored) else."""
    # the first image-shaped input gives the size boxes are in (the agent takes the same)
    hw = next((hw for v in ref.inputs.values() if (hw := input_hw_of(v.shape[1:])) is not None), None)
    plan = Plan(vspec, gates, hw)
    outputs = list(ref.outputs)
    for name, layout in vspec.boxes.items():
        if name not in ref.outputs:
            raise BadInput(f"--boxes {name}: the reference has no such output; outputs: {', '.join(outputs)}")
        plan.reference_dets[name] = [
            decode(
                layout,
                {n: ref.outputs[n][k] for n in outputs},
                name,
                vspec.box_score,
                vspec.nms_iou,
                vspec.max_det,
                plan.input_hw,
            )
            for k in range(ref.samples)
        ]
    if labels is not None:
        path = Path(labels)
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BadInput(f"--labels {labels}: not a readable JSON file ({type(exc).__name__})") from None
        if classification.is_class_labels(doc):
            plan.class_labels = classification.check_labels(doc, ref.samples, labels)
            for name, y in ref.outputs.items():
                shape = tuple(d for d in y.shape[1:] if d != 1) or (1,)
                if len(shape) == 1 and is_class_scores(shape, y[0]):
                    plan.reference_scores[name] = y.reshape(ref.samples, -1)
            if not plan.reference_scores:
                raise BadInput(f"--labels {labels}: class ids, but no output holds a vector of class scores")
            for scores in plan.reference_scores.values():
                classification.accuracy(scores, plan.class_labels)  # class ids in range, or BadInput
        else:
            if not vspec.boxes:
                raise BadInput(f"--labels {labels}: COCO boxes need --boxes OUTPUT=DECODER")
            plan.truth = detection.check_labels(doc, ref.samples, plan.input_hw, labels)
    for gate, per_output in gates.items():
        metric = accuracy_gates.ACCURACY_GATES[gate][0]
        flag = "--" + gate.replace("_", "-")
        if metric in ("map", "map50", "map50_drop") and not vspec.boxes:
            raise BadInput(f"{flag} needs --boxes OUTPUT=DECODER")
        if metric == "map50_drop" and plan.truth is None:
            raise BadInput(f"{flag} needs --labels GT.json (COCO boxes)")
        if metric.startswith("accuracy") and plan.class_labels is None:
            raise BadInput(f"{flag} needs --labels with class ids")
        for out in per_output:
            if out != "*" and out not in ref.outputs:
                raise BadInput(f"{flag} {out}: the reference has no such output")
    map_gates = any(accuracy_gates.ACCURACY_GATES[g][0].startswith("map") for g in gates)
    if plan.truth is not None or map_gates:
        need("pycocotools", "mAP (--labels GT.json, --min-map50...)")
    elif vspec.boxes and not have("pycocotools"):
        plan.map_scored = False
        print(f"edgebench: note: mAP needs pycocotools ({INSTALL_HINT}); boxes only matched")
    return plan


def apply(plan: Plan, session: Any, result: dict) -> None:
    """Fetch the device's boxes / outputs, score them, add figures and gates."""
    val = result.setdefault("validation", {})
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        if plan.reference_dets and plan.map_scored:
            local = session.fetch(result["run_id"], files.BOXES, Path(d) / files.BOXES)
            device, _ = boxfile.load(local)
            val["detection"] = {}
            for name, ref_dets in plan.reference_dets.items():
                val["detection"][name], figures[name] = _detection(plan, name, device[name], ref_dets)
        if plan.needs_outputs:
            local = session.fetch(result["run_id"], files.OUTPUTS, Path(d) / files.OUTPUTS)
            with np.load(local, allow_pickle=False) as z:
                outs = {k: z[k] for k in z.files}
            val["accuracy"] = {}
            for name, ref_scores in plan.reference_scores.items():
                val["accuracy"][name], figures[name] = _accuracy(plan, outs[name], ref_scores)
    checks = accuracy_gates.evaluate(figures, plan.gates)
    val["gates"] = list(val.get("gates") or []) + checks
    val["passed"] = all(g["passed"] for g in val["gates"])
    result["gates"] = list(result.get("gates") or []) + checks


def _detection(
    plan: Plan, name: str, device: list[Detections], reference: list[Detections]
) -> tuple[dict, dict]:
    v, max_det = plan.vspec, plan.vspec.max_det
    agree = detection.agreement(device, reference, v.box_score, max_det)
    out: dict[str, Any] = {
        "layout": v.boxes[name],
        "score": v.box_score,
        "nms_iou": v.nms_iou,
        "max_det": max_det,
        "detections": sum(len(d) for d in device),
        "reference_detections": sum(len(d) for d in reference),
        "agreement": _brief(agree),
    }
    against = plan.truth if plan.truth is not None else detection.truth_from_detections(
        [d.above(v.box_score) for d in reference]
    )  # fmt: skip
    per_sample = detection.per_sample_ap50(device, against, max_det)
    scored = [(k, x) for k, x in enumerate(per_sample) if x is not None]
    worst = min(scored, key=lambda t: t[1]) if scored else None
    ranked = sorted(scored, key=lambda t: t[1])[: v.worst]
    out["worst"] = [{"sample": k, "metric": "ap50", "value": x} for k, x in ranked]  # per-sample AP50
    fig: dict[str, Any] = {"worst": {"map50": worst}}
    if plan.truth is not None:
        dev = detection.evaluate(device, plan.truth, max_det)
        ref = detection.evaluate(reference, plan.truth, max_det)
        out.update(
            map=dev["map"], map50=dev["map50"], per_class=dev["per_class"], reference=_brief(ref, True)
        )
        out["drop"] = {k: _minus(ref[k], dev[k]) for k in ("map", "map50")}
        fig.update(map=dev["map"], map50=dev["map50"], map50_drop=out["drop"]["map50"])
    else:
        fig.update(map=agree["map"], map50=agree["map50"])
    return out, fig


def _accuracy(plan: Plan, device: np.ndarray, reference: np.ndarray) -> tuple[dict, dict]:
    labels = plan.class_labels or []
    dev = classification.accuracy(device.reshape(len(labels), -1), labels)
    ref = classification.accuracy(reference, labels)
    out = {
        "top1": dev["top1"],
        "top5": dev["top5"],
        "samples": dev["samples"],
        "wrong": dev["wrong"][:50],
        "reference": {"top1": ref["top1"], "top5": ref["top5"]},
        "drop": {k: _minus(ref[k], dev[k]) for k in ("top1", "top5")},
    }
    worst = (dev["wrong"][0], 0.0) if dev["wrong"] else None
    fig = {"accuracy": dev["top1"], "accuracy_drop": out["drop"]["top1"], "worst": {"accuracy": worst}}
    return out, fig


def _brief(r: dict, per_class: bool = False) -> dict:
    keys = ("map", "map50", "per_class") if per_class else ("map", "map50")
    return {k: r[k] for k in keys}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def summary_lines(result: dict) -> list[str]:
    """One line per scored output, for the terminal."""
    val = result.get("validation") or {}
    lines = []
    for name, d in (val.get("detection") or {}).items():
        a = d["agreement"]
        line = f"{name}: boxes vs the reference mAP50 {_f(a['map50'])}, mAP {_f(a['map'])}"
        if "map50" in d:
            r = d["reference"]
            line += (f"; vs labels mAP50 {_f(d['map50'])} (reference {_f(r['map50'])}, drop "
                     f"{_f(d['drop']['map50'])}), mAP {_f(d['map'])} (reference {_f(r['map'])})")  # fmt: skip
        lines.append(line)
    for name, a in (val.get("accuracy") or {}).items():
        lines.append(f"{name}: top-1 accuracy {_f(a['top1'])} (reference {_f(a['reference']['top1'])}, "
                     f"drop {_f(a['drop']['top1'])}), top-5 {_f(a['top5'])}")  # fmt: skip
    return lines


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
