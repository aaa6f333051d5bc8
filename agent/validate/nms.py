"""Class-wise non-maximum suppression, numpy only (it runs on the board).

Greedy, highest score first: a box is dropped when it overlaps a kept box
of the same class by more than ``iou``. Classes are kept apart by shifting
each class's boxes by its own offset, so one pass over all boxes serves every
class (the trick torchvision's ``batched_nms`` and Ultralytics' NMS use).
"""

from __future__ import annotations

import numpy as np

# Ultralytics' NMS caps the boxes it sorts (max_nms=30000); more than that is a
# head that scores everything, and sorting more only costs time
MAX_CANDIDATES = 30000


def nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float = 0.5, max_det: int = 300
) -> np.ndarray:
    """Indices (int64, best first) of the boxes kept: ``boxes`` [N, 4] xyxy,
    ``scores`` [N], ``classes`` [N]; at most ``max_det`` of them."""
    n = int(scores.shape[0])
    if n == 0 or max_det <= 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]
    b = boxes[order].astype(np.float64)
    span = float(np.max(b)) - min(0.0, float(np.min(b))) + 1.0
    b = b + (classes[order].astype(np.float64) * span)[:, None]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    alive = np.ones(order.shape[0], dtype=bool)
    keep: list[int] = []
    for i in range(order.shape[0]):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) >= max_det:
            break
        rest = np.nonzero(alive[i + 1 :])[0] + i + 1
        if not rest.size:
            break
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        union = area[i] + area[rest] - inter
        over = inter > iou * np.where(union > 0, union, np.inf)
        alive[rest[over]] = False
    return order[np.asarray(keep, dtype=np.int64)]
