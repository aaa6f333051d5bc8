"""Task scores for ``quantize --target``: ``map50``/``map`` of decoded boxes and
``accuracy`` (top-1), on the host (ONNX Runtime's CPU EP), against
``--labels`` when given, else against the float model's own answers on the
same samples (agreement). Decoding, NMS and mAP are validate's own
(``agent/validate/decode.py``, ``controller/accuracy/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.samples import feed_shape
from agent.validate.decode import check_layout, decode
from controller.quantize.calibration import graph_inputs

TASK_METRICS = ("map50", "map", "accuracy")


@dataclass
class TaskOptions:
    """validate's detector options, as ``quantize`` takes them."""

    boxes: dict[str, str] = field(default_factory=dict)  # output -> decoder
    labels: Path | None = None
    box_score: float = 0.25
    nms_iou: float = 0.5
    max_det: int = 300

    @classmethod
    def from_args(cls, args: Any) -> TaskOptions:
        """From the task options runopts.add_task_options defines."""
        if args.labels and not Path(args.labels).is_file():
            raise BadInput(f"labels file not found: {args.labels}")
        return cls(
            boxes=cls.parse_boxes(args.boxes),
            labels=Path(args.labels) if args.labels else None,
            box_score=args.box_score,
            nms_iou=args.nms_iou,
            max_det=args.max_det,
        )

    @classmethod
    def parse_boxes(cls, items: list[str]) -> dict[str, str]:
        out = {}
        for text in items:
            name, sep, layout = text.partition("=")
            if not sep or not name or not layout:
                raise BadInput(f"bad --boxes {text!r}: expected OUTPUT=DECODER, e.g. output0=yolov8")
            check_layout(layout)
            out[name] = layout
        return out


def feeds(model: Path, val: dict[str, np.ndarray], budget: int) -> list[dict[str, np.ndarray]]:
    import onnx

    inputs = graph_inputs(onnx.load(str(model), load_external_data=False))
    missing = [n for n in inputs if n not in val]
    if missing:
        raise BadInput(f"the validation set lacks model input(s) {', '.join(missing)}")
    n = min(next(iter(val.values())).shape[0], budget)
    return [
        {k: np.ascontiguousarray(val[k][i].reshape(feed_shape(k, tuple(val[k].shape[1:]), d)))
         for k, d in inputs.items()}
        for i in range(n)
    ]  # fmt: skip


class TaskScorer:
    """The float model's answers on the validation samples, and ``score(model)``:
    the candidate's ``metric`` against the labels or those answers.
    ``float_value`` is the float model's own score (None in agreement mode)."""

    def __init__(self, float_model: Path, val: dict[str, np.ndarray], metric: str, budget: int,
                 task: TaskOptions) -> None:  # fmt: skip
        import onnxruntime as ort

        if metric not in TASK_METRICS:
            raise BadInput(f"--target {metric}: not a task metric ({', '.join(TASK_METRICS)})")
        if metric in ("map50", "map") and not task.boxes:
            raise BadInput(f"--target {metric} needs --boxes OUTPUT=DECODER (e.g. output0=yolov8)")
        self.metric, self.task = metric, task
        self.feeds = feeds(float_model, val, budget)
        self.total = int(next(iter(val.values())).shape[0])
        sess = ort.InferenceSession(str(float_model), providers=["CPUExecutionProvider"])
        self.names = [o.name for o in sess.get_outputs()]
        shape = sess.get_inputs()[0].shape
        self.input_hw = (shape[-2], shape[-1]) if all(isinstance(d, int) for d in shape[-2:]) else None
        ref = self._answers(sess)
        self.truth: Any = None
        self.float_value: float | None = None
        if task.labels is not None:
            self.truth = self._labels(task.labels)
            self.float_value = self._score(ref)
        elif metric == "accuracy":
            self.truth = [int(np.argmax(r)) for r in ref]
        else:
            from controller.accuracy import detection

            self.truth = detection.truth_from_detections(ref)

    def _labels(self, path: Path) -> Any:
        """The labels of the whole validation set, cut to the samples scored (``--budget``)."""
        from controller.accuracy import classification, detection

        n = len(self.feeds)
        if self.metric == "accuracy":
            return classification.load_labels(path, self.total)[:n]
        doc = detection.load_labels(path, self.total, self.input_hw)
        ids = sorted(int(im["id"]) for im in doc["images"])[:n]
        keep = set(ids)
        return {**doc, "images": [im for im in doc["images"] if int(im["id"]) in keep],
                "annotations": [a for a in doc["annotations"] if int(a["image_id"]) in keep]}  # fmt: skip

    def _answers(self, sess: Any) -> list[Any]:
        out = []
        for f in self.feeds:
            ys = dict(zip(self.names, sess.run(None, f), strict=True))
            if self.metric == "accuracy":
                out.append(np.asarray(ys[self.names[0]], dtype=np.float64).reshape(-1))
            else:
                (name, layout), = self.task.boxes.items()  # one detector output  # fmt: skip
                t = self.task
                out.append(decode(layout, ys, name, t.box_score, t.nms_iou, t.max_det, self.input_hw))
        return out

    def _score(self, answers: list[Any]) -> float | None:
        from controller.accuracy import classification, detection

        if self.metric == "accuracy":
            return classification.accuracy(np.stack(answers), list(self.truth))["top1"]
        return detection.evaluate(answers, self.truth, self.task.max_det)[self.metric]

    def score(self, model: Path) -> float | None:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        return self._score(self._answers(sess))
