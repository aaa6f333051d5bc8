"""Box outputs (``--boxes OUTPUT=LAYOUT``): the device's boxes matched to the
reference's at IoU >= 0.5 (same class when the layout has one), per sample.

A layout names the columns of one box row, e.g. ``xyxy,score,class``: the
first token is the box format (``xyxy``, ``yxyx``, ``xywh`` top-left + size,
``cxcywh`` centre + size), then ``score``, ``class`` or ``_`` (ignored) for
each further column. Rows scoring under the score threshold are dropped on
both sides (fixed-size NMS outputs pad with zero rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.errors import BadInput

BOX_FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")


@dataclass
class Layout:
    box: str
    score: int | None  # column index
    cls: int | None
    width: int

    @classmethod
    def parse(cls, text: str) -> Layout:
        tokens = [t.strip() for t in str(text).split(",") if t.strip()]
        if not tokens or tokens[0] not in BOX_FORMATS:
            raise BadInput(
                f"box layout {text!r}: start with one of {', '.join(BOX_FORMATS)}, e.g. xyxy,score,class"
            )
        score = klass = None
        for i, t in enumerate(tokens[1:], start=4):
            if t == "score" and score is None:
                score = i
            elif t == "class" and klass is None:
                klass = i
            elif t != "_":
                raise BadInput(f"box layout {text!r}: unknown column {t!r} (score, class or _)")
        return cls(tokens[0], score, klass, 3 + len(tokens))


def xyxy(rows: np.ndarray, fmt: str) -> np.ndarray:
    """The first four columns of box rows in ``fmt`` as float64 xyxy."""
    b = rows[:, :4].astype(np.float64)
    if fmt == "yxyx":
        return b[:, [1, 0, 3, 2]]
    if fmt == "xywh":
        return np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)
    if fmt == "cxcywh":
        hw, hh = b[:, 2] / 2, b[:, 3] / 2
        return np.stack([b[:, 0] - hw, b[:, 1] - hh, b[:, 0] + hw, b[:, 1] + hh], axis=1)
    return b


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N x 4 xyxy) with every box in b (M x 4)."""
    if not a.shape[0] or not b.shape[0]:
        return np.zeros((a.shape[0], b.shape[0]))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _rows(x: np.ndarray, layout: Layout, score_threshold: float) -> np.ndarray:
    rows = np.asarray(x, dtype=np.float64)
    rows = rows.reshape(-1, rows.shape[-1]) if rows.ndim else rows.reshape(0, layout.width)
    if rows.shape[1] < layout.width:
        raise BadInput(f"box output has {rows.shape[1]} columns; layout needs {layout.width}")
    if layout.score is not None:
        rows = rows[rows[:, layout.score] >= score_threshold]
    return rows


def match(
    out: np.ndarray, ref: np.ndarray, layout: Layout, iou: float = 0.5, score_threshold: float = 0.25
) -> dict[str, float]:
    """``box_recall``, ``box_precision``, ``box_count_agreement`` of one sample:
    greedy matching by IoU, highest first, each box used once."""
    o, r = _rows(out, layout, score_threshold), _rows(ref, layout, score_threshold)
    m = iou_matrix(xyxy(o, layout.box), xyxy(r, layout.box))
    if layout.cls is not None and m.size:
        m = np.where(o[:, None, layout.cls] == r[None, :, layout.cls], m, 0.0)
    matched = 0
    if m.size:
        pairs = np.argwhere(m >= iou)
        order = np.argsort(-m[pairs[:, 0], pairs[:, 1]], kind="stable")
        used_o: set[int] = set()
        used_r: set[int] = set()
        for i, j in pairs[order]:
            if i not in used_o and j not in used_r:
                used_o.add(int(i))
                used_r.add(int(j))
                matched += 1
    n_o, n_r = o.shape[0], r.shape[0]
    return {
        "box_recall": matched / n_r if n_r else 1.0,
        "box_precision": matched / n_o if n_o else 1.0,
        "box_count_agreement": 1.0 if n_o == n_r else 0.0,
        "boxes_ref": float(n_r),
        "boxes_out": float(n_o),
    }
