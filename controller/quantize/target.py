"""``--target METRIC>=X``: the target, and the tensor-metric scorer (the worst
output's cosine, SQNR, top-1 agreement, mask IoU or NMSE against the float
model on the validation samples; never the calibration set). Task metrics
(``map50``, ``map``, ``accuracy``) are scored by ``task_score.py``; the
search itself is ``search.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.errors import BadInput
from agent.samples import check_samples
from agent.validate.metrics import OutputStats, sample_metrics
from controller.quantize.calibration import graph_inputs
from controller.quantize.task_score import TASK_METRICS

HIGHER_IS_BETTER = {"cosine": True, "sqnr_db": True, "top1_agreement": True, "top5_agreement": True,
                    "mask_iou": True, "nmse": False, **dict.fromkeys(TASK_METRICS, True)}  # fmt: skip
_TARGET = re.compile(r"^\s*([a-z0-9_]+)(?:@([0-9.]+))?\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


@dataclass
class Target:
    metric: str
    op: str
    value: float
    mask_threshold: float = 0.5

    @classmethod
    def parse(cls, text: str) -> Target:
        m = _TARGET.match(text)
        if m is None or m.group(1) not in HIGHER_IS_BETTER:
            raise BadInput(
                f"bad --target {text!r}: expected METRIC>=X with METRIC one of {', '.join(HIGHER_IS_BETTER)} "
                "(mask_iou@T for a threshold), e.g. 'cosine>=0.99' or 'map50>=0.75'"
            )
        metric, op = m.group(1), m.group(3)
        want = ">=" if HIGHER_IS_BETTER[metric] else "<="
        if op != want:  # the other direction would ask for a worse model: refused, not guessed
            better = "higher" if want == ">=" else "lower"
            raise BadInput(f"bad --target {text!r}: {metric} is better {better}; write {metric}{want}X")
        return cls(metric, op, float(m.group(4)), float(m.group(2) or 0.5))

    def met(self, v: float | None) -> bool:
        return v is not None and (v >= self.value if self.op == ">=" else v <= self.value)

    def __str__(self) -> str:
        at = f"@{self.mask_threshold:g}" if self.metric == "mask_iou" else ""
        return f"{self.metric}{at}{self.op}{self.value:.10g}"


class Scorer:
    """The float model's outputs on the validation samples, and a score of a
    candidate model's outputs against them: the worst output's summary figure."""

    def __init__(self, float_model: Path, val: dict[str, np.ndarray], target: Target, budget: int) -> None:
        import onnx
        import onnxruntime as ort

        self.target = target
        inputs = graph_inputs(onnx.load(str(float_model), load_external_data=False))
        n, shapes = check_samples(val, inputs, "the validation set", extra_ok=True)
        self.feeds = [
            {k: np.ascontiguousarray(val[k][i].reshape(shapes[k])) for k in inputs}
            for i in range(min(n, budget))
        ]
        sess = ort.InferenceSession(str(float_model), providers=["CPUExecutionProvider"])
        self.names = [o.name for o in sess.get_outputs()]
        self.ref = [sess.run(None, f) for f in self.feeds]

    def score(self, model: Path) -> float | None:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        stats = {n: OutputStats(n) for n in self.names}
        for f, ref in zip(self.feeds, self.ref, strict=True):
            for name, y, r in zip(self.names, sess.run(None, f), ref, strict=True):
                stats[name].add(sample_metrics(np.asarray(y).reshape(r.shape), r, self.target.mask_threshold))
        vals = [s.summary().get(self.target.metric) for s in stats.values()]
        vals = [v for v in vals if v is not None]
        if not vals:
            raise BadInput(f"--target {self.target}: no output of this model has {self.target.metric}")
        return min(vals) if HIGHER_IS_BETTER[self.target.metric] else max(vals)
