"""Classifier accuracy on the controller: top-1 and top-5 against class ids.

Label file (``--labels LABELS.json`` for a classifier): a JSON list of
integers, one class id per sample in sample order, each in ``[0, C)`` where C
is the size of the output's last axis: ``[0, 1, 1, 0]``. An object
``{"labels": [...]}`` is read the same way (room for names beside them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput


def load_labels(path: Path, samples: int) -> list[int]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"--labels {path}: not a readable JSON file ({type(exc).__name__})") from None
    return check_labels(doc, samples, str(path))


def is_class_labels(doc: Any) -> bool:
    """A class-id label document (a list, or {"labels": list}) rather than COCO JSON."""
    return isinstance(doc, list) or (isinstance(doc, dict) and "labels" in doc and "images" not in doc)


def check_labels(doc: Any, samples: int, where: str) -> list[int]:
    ids = doc.get("labels") if isinstance(doc, dict) else doc
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadInput(f"--labels {where}: expected a JSON list of integer class ids, one per sample")
    if len(ids) != samples:
        raise BadInput(f"--labels {where}: {len(ids)} class ids for {samples} samples")
    if any(i < 0 for i in ids):
        raise BadInput(f"--labels {where}: class ids must be >= 0")
    return list(ids)


def accuracy(scores: np.ndarray, labels: list[int]) -> dict:
    """``{top1, top5, samples, classes, wrong[]}`` of scores [S, C] (one row per
    sample; any leading batch axes of 1 squeezed by the caller)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s.reshape(s.shape[0], -1)
    y = np.asarray(labels, dtype=np.int64)
    if s.shape[0] != y.shape[0]:
        raise BadInput(f"--labels: {y.shape[0]} class ids for {s.shape[0]} samples")
    c = s.shape[1]
    if y.size and int(y.max()) >= c:
        raise BadInput(f"--labels: class id {int(y.max())} is out of range for {c} classes")
    k = min(5, c)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    hit1 = top[:, 0] == y
    hitk = np.any(top == y[:, None], axis=1)
    return {
        "top1": float(np.mean(hit1)) if y.size else None,
        "top5": float(np.mean(hitk)) if y.size else None,  # top-min(5, C)
        "samples": int(y.size),
        "classes": c,
        "wrong": [int(i) for i in np.nonzero(~hit1)[0]],
    }
