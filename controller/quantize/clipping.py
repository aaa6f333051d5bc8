"""What an INT8 model does to field values, per quantized tensor: the share it
clips (outside the tensor's quantization range) and the effective bits left
(how many of its levels the field values use). Two sources, one row format:

- a QDQ ONNX model (any quantizer: edgebench, ORT's ``quantize_static``,
  NNCF, TensorRT's tools): every ``QuantizeLinear``'s float input becomes an
  extra graph output, the model runs on ONNX Runtime's CPU EP, and each value
  is compared with the range the QuantizeLinear's scale and zero point admit;
- an int8 ``.tflite`` (``clipping_tflite.py``): each activation tensor's
  integer values, where clipping shows as saturation at the type's limits.

Row: ``{tensor, values, clipped, clip_share, range[lo, hi], scale, levels,
effective_bits, per_sample}``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from agent.samples import feed_shape

# the field values' span is taken between these quantiles of their levels, so
# a handful of outliers does not claim levels the bulk never uses
SPAN_Q = (0.001, 0.999)


def effective_bits(hist: np.ndarray) -> float | None:
    """log2 of the levels spanned by the field values (SPAN_Q of them), from a
    histogram over the tensor's quantization levels; 8.0 when an INT8 tensor's
    whole range is used, 1.0 when two neighbouring levels hold nearly everything."""
    total = int(hist.sum())
    if total == 0:
        return None
    cum = np.cumsum(hist)
    lo = int(np.searchsorted(cum, SPAN_Q[0] * total, side="right"))
    hi = int(np.searchsorted(cum, SPAN_Q[1] * total, side="left"))
    return round(math.log2(max(1, hi - lo + 1)), 2)


def row(
    name: str, clipped: int, values: int, hist: np.ndarray, lo: float, hi: float, scale: float,
    per_sample: int,
) -> dict[str, Any]:  # fmt: skip
    return {
        "tensor": name,
        "values": int(values),
        "clipped": int(clipped),
        "clip_share": round(clipped / values, 6) if values else 0.0,
        "range": [lo, hi],
        "scale": scale,
        "levels": int(len(hist)),
        "effective_bits": effective_bits(hist),
        "per_sample": int(per_sample),
    }


def onnx_clipping(
    model: Path,
    field: dict[str, np.ndarray],
    ranges: dict[str, dict[str, float]],
    clamps: dict[str, list],
) -> list[dict[str, Any]]:
    """One row per calibrated tensor of a QDQ model, from a run over the field samples.
    ``clamps``: a Relu/Clip the quantizer folded into the tensor's range is
    applied first, so its own clamp is not counted as clipping."""
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(model))
    have = {o.name for o in m.graph.output}
    for name in ranges:
        if name not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    inits = {t.name for t in m.graph.initializer}
    declared = {
        i.name: [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in i.type.tensor_type.shape.dim]
        for i in m.graph.input if i.name not in inits
    }  # fmt: skip
    shapes = {k: feed_shape(k, tuple(field[k].shape[1:]), d) for k, d in declared.items()}
    clipped = dict.fromkeys(ranges, 0)
    total = dict.fromkeys(ranges, 0)
    hists = {k: np.zeros(max(2, round((r["max"] - r["min"]) / r["scale"]) + 1), np.int64)
             for k, r in ranges.items()}  # fmt: skip
    n = next(iter(field.values())).shape[0]
    for i in range(n):
        feeds = {k: np.ascontiguousarray(field[k][i].reshape(shapes[k])) for k in declared}
        for name, y in zip(outs, sess.run(None, feeds), strict=True):
            r = ranges.get(name)
            if r is None:
                continue
            y = np.asarray(y, dtype=np.float64)
            c = clamps.get(name)
            if c is not None:
                y = np.clip(y, -np.inf if c[0] is None else c[0], np.inf if c[1] is None else c[1])
            # within half a step of the edge the value rounds to the edge anyway: not clipped
            half = 0.5 * r["scale"]
            clipped[name] += int(np.count_nonzero((y < r["min"] - half) | (y > r["max"] + half)))
            total[name] += y.size
            h = hists[name]
            level = np.clip(np.rint((y - r["min"]) / r["scale"]), 0, len(h) - 1).astype(np.int64)
            h += np.bincount(level.reshape(-1), minlength=len(h))
    return [
        row(k, clipped[k], total[k], hists[k], r["min"], r["max"], r["scale"], total[k] // max(1, n))
        for k, r in ranges.items()
    ]
