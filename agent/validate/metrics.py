"""Output-against-reference metrics, per sample, then per output over all
samples. numpy only: they run on the board, beside the runtime.

Tensor metrics (cosine, NMSE, SQNR, max abs error) say how far the numbers
moved; task metrics say whether the answer moved, which the tensor metrics
hide: a detector's probability map can keep a cosine of 0.9 while its
thresholded mask vanishes. So every output gets the task metrics its shape
allows:

- ``top1_agreement`` / ``top5_agreement``: per sample, the argmax over the last
  axis (classes) equals the reference's / is among the output's top 5; an
  output with a leading sequence axis (a CTC recogniser's T x C softmax)
  counts every position. For outputs whose per-sample shape is a vector of
  class scores, or a sequence of class distributions (rows summing to 1).
- ``mask_iou``: the IoU of the output and the reference thresholded at T, for
  dense maps (rank >= 2 with a spatial extent) whose reference lies in [0, 1]
  (probabilities). Two empty masks agree (IoU 1).
- boxes, when asked (``boxes.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TOPK = 5
# An exact match has infinite SQNR; float64 rounding sits near 313 dB, so a
# cap below that reads as "identical" and keeps the figure a number
SQNR_CAP_DB = 300.0


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def tensor_metrics(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """cosine, nmse, sqnr_db, max_abs_err, max_rel_err (max |error| / max |reference|) of one sample."""
    a, b = _flat(out), _flat(ref)
    err = a - b
    sig = float(np.dot(b, b))
    noise = float(np.dot(err, err))
    na, nb = math.sqrt(float(np.dot(a, a))), math.sqrt(sig)
    if na == 0 and nb == 0:
        cosine = 1.0
    elif na == 0 or nb == 0:
        cosine = 0.0
    else:
        cosine = float(np.dot(a, b)) / (na * nb)
    if sig == 0:
        nmse = 0.0 if noise == 0 else math.inf
    else:
        nmse = noise / sig
    if noise == 0:
        sqnr = SQNR_CAP_DB
    elif sig == 0:
        sqnr = -SQNR_CAP_DB
    else:
        sqnr = min(SQNR_CAP_DB, 10 * math.log10(sig / noise))
    max_abs = float(np.max(np.abs(err))) if err.size else 0.0
    peak = float(np.max(np.abs(b))) if b.size else 0.0
    return {
        "cosine": cosine,
        "nmse": nmse,
        "sqnr_db": sqnr,
        "max_abs_err": max_abs,
        # against the reference's peak: an element-wise ratio explodes on near-zero values
        "max_rel_err": max_abs / peak if peak > 0 else (0.0 if max_abs == 0 else math.inf),
    }


def is_class_scores(sample_shape: tuple[int, ...], ref: np.ndarray) -> bool:
    """A vector of class scores, or a sequence of class distributions (rows that
    sum to 1, as a recogniser's softmax); a 2-D map of other numbers is not."""
    if len(sample_shape) == 1:
        return sample_shape[0] >= 2
    if len(sample_shape) != 2 or sample_shape[-1] < 2:
        return False
    rows = np.asarray(ref, dtype=np.float64).reshape(sample_shape).sum(axis=-1)
    return bool(np.allclose(rows, 1.0, atol=1e-2))


def is_dense_map(sample_shape: tuple[int, ...], ref: np.ndarray) -> bool:
    spatial = [d for d in sample_shape if d > 1]
    if len(sample_shape) < 2 or len(spatial) < 2 or ref.size < 16:
        return False
    lo, hi = float(np.min(ref)), float(np.max(ref))
    return lo >= 0.0 and hi <= 1.0 and not is_class_scores(sample_shape, ref)


def topk_agreement(out: np.ndarray, ref: np.ndarray, k: int = TOPK) -> tuple[float, float]:
    """(top-1, top-k) agreement over the positions of one sample."""
    c = out.shape[-1]
    o = np.asarray(out, dtype=np.float64).reshape(-1, c)
    r = np.asarray(ref, dtype=np.float64).reshape(-1, c)
    r1 = np.argmax(r, axis=1)
    top1 = float(np.mean(np.argmax(o, axis=1) == r1))
    k = min(k, c)
    topk_idx = np.argpartition(-o, k - 1, axis=1)[:, :k]
    topk = float(np.mean(np.any(topk_idx == r1[:, None], axis=1)))
    return top1, topk


def mask_iou(out: np.ndarray, ref: np.ndarray, threshold: float) -> float:
    a = np.asarray(out) > threshold
    b = np.asarray(ref) > threshold
    union = int(np.count_nonzero(a | b))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(a & b)) / union


def sample_metrics(out: np.ndarray, ref: np.ndarray, mask_threshold: float) -> dict[str, float]:
    """Every metric that applies to one sample of one output (batch axis of 1 dropped)."""
    shape = tuple(int(d) for d in ref.shape)
    if shape and shape[0] == 1 and len(shape) > 1:
        shape = shape[1:]
    m = tensor_metrics(out, ref)
    if is_class_scores(shape, ref):
        m["top1_agreement"], m["top5_agreement"] = topk_agreement(out.reshape(shape), ref.reshape(shape))
    if is_dense_map(shape, ref):
        m["mask_iou"] = mask_iou(out, ref, mask_threshold)
    return m


# Per metric: how a summary is read, and which way is worse.
LOWER_IS_WORSE = {"cosine", "sqnr_db", "top1_agreement", "top5_agreement", "mask_iou", "box_recall",
                  "box_precision", "box_count_agreement"}  # fmt: skip
HIGHER_IS_WORSE = {"nmse", "max_abs_err", "max_rel_err"}


@dataclass
class OutputStats:
    """One output's per-sample metrics, accumulated over the samples."""

    name: str
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self.values.setdefault(k, []).append(float(v))

    def summary(self) -> dict[str, float | None]:
        """``cosine`` is the minimum (the gate reads the worst sample) with
        ``cosine_mean`` beside it; ``nmse``/``max_abs_err`` the worst, with their
        mean; ``sqnr_db`` the mean over samples with ``sqnr_db_min``; agreement
        and IoU are means with their minimum."""
        out: dict[str, float | None] = {"name": self.name}  # type: ignore[dict-item]
        for k, vals in self.values.items():
            arr = np.asarray(vals, dtype=np.float64)
            if k in HIGHER_IS_WORSE:
                out[k] = _json_float(np.max(arr))
                out[f"{k}_mean"] = _json_float(np.mean(arr))
            elif k == "cosine":
                out[k] = _json_float(np.min(arr))
                out["cosine_mean"] = _json_float(np.mean(arr))
            elif k == "sqnr_db":
                out[k] = _json_float(np.mean(arr))
                out["sqnr_db_min"] = _json_float(np.min(arr))
            else:
                out[k] = _json_float(np.mean(arr))
                out[f"{k}_min"] = _json_float(np.min(arr))
        return out

    def worst(self, limit: int) -> list[dict]:
        """The worst samples of each metric, by index."""
        rows = []
        for k, vals in self.values.items():
            if k not in LOWER_IS_WORSE and k not in HIGHER_IS_WORSE:
                continue
            arr = np.asarray(vals, dtype=np.float64)
            order = np.argsort(-arr if k in HIGHER_IS_WORSE else arr, kind="stable")[:limit]
            rows += [
                {"sample": int(i), "output": self.name, "metric": k, "value": _json_float(arr[i])}
                for i in order
            ]
        return rows


def _json_float(x: float) -> float | None:
    """JSON has no inf/nan: an undefined figure (NMSE of an all-zero reference) is null."""
    x = float(x)
    return x if math.isfinite(x) else None
