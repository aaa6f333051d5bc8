"""Calibration data for the quantizer, and the calibration profile a quantized
model carries so that ``coverage`` can tell when field data leaves it.

Samples follow validate's convention (DESIGN.md): the first axis of each
array indexes samples, and a sample gets a batch axis of 1 when the model's
input has one more dimension.

The profile (``edgebench.calibration`` in the ONNX ``metadata_props``; a
``<model>.calibration.json`` sidecar for .tflite)::

    {schema, method, samples,
     inputs{NAME: {axis, mean[], std[], p01[], p50[], p99[], min, max}},  # per channel
     activations{TENSOR: {min, max, scale}},                               # the calibrated ranges
     clamps{TENSOR: [lo|null, hi|null]}}   # a Relu/Clip the quantizer folded into TENSOR's range
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.samples import check_samples, feed_shape

SCHEMA = "edgebench.calibration/v1"
KEY = "edgebench.calibration"


class NpzReader:
    """An ORT CalibrationDataReader over .npz samples, one inference per sample."""

    def __init__(
        self, arrays: dict[str, np.ndarray], declared: dict[str, list[Any]], limit: int | None = None
    ) -> None:
        self.arrays = arrays
        n, self.shapes = check_samples(arrays, declared, "the calibration set", extra_ok=True)
        self.count = min(n, limit) if limit else n
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= self.count:
            return None
        feeds = {k: np.ascontiguousarray(a[self.i].reshape(self.shapes[k])) for k, a in self.arrays.items()}
        self.i += 1
        return feeds

    def rewind(self) -> None:
        self.i = 0


def channel_axis(sample_shape: tuple[int, ...]) -> int | None:
    """The channel axis of one sample: NCHW-style (C, H, W) when the first of
    three dims is small, NHWC-style (H, W, C) when the last is; None otherwise."""
    if len(sample_shape) == 3:
        if sample_shape[0] <= 4 < sample_shape[-1]:
            return 0
        if sample_shape[-1] <= 4 < sample_shape[0]:
            return 2
    return None


def input_profile(x: np.ndarray) -> dict[str, Any]:
    """Per-channel statistics of one input's samples (or over everything when it has no channel axis)."""
    sample = tuple(x.shape[1:])
    axis = channel_axis(sample)
    xf = np.asarray(x, dtype=np.float64)
    if axis is None:
        flat = xf.reshape(1, -1)
    else:
        flat = np.moveaxis(xf, axis + 1, 0).reshape(sample[axis], -1)
    return {
        "axis": axis,
        "mean": flat.mean(axis=1).tolist(),
        "std": flat.std(axis=1).tolist(),
        "p01": np.percentile(flat, 1, axis=1).tolist(),
        "p50": np.percentile(flat, 50, axis=1).tolist(),
        "p99": np.percentile(flat, 99, axis=1).tolist(),
        "min": float(xf.min()),
        "max": float(xf.max()),
    }


def activation_ranges(model: object) -> dict[str, dict[str, float]]:
    """The float range each QuantizeLinear of a QDQ model admits for its input
    tensor: (qmin - zero_point) * scale .. (qmax - zero_point) * scale. Weights
    (initializer inputs) are left out: only activations see field data."""
    from onnx import numpy_helper

    g = model.graph  # type: ignore[attr-defined]
    inits = {t.name: t for t in g.initializer}
    out = {}
    for n in g.node:
        if (
            n.op_type != "QuantizeLinear"
            or n.input[0] in inits
            or len(n.input) < 2
            or n.input[1] not in inits
        ):
            continue
        scale = numpy_helper.to_array(inits[n.input[1]])
        zp_t = inits.get(n.input[2]) if len(n.input) > 2 else None
        zp = numpy_helper.to_array(zp_t) if zp_t is not None else np.zeros((), np.uint8)
        if scale.size != 1:
            continue  # per-axis activation scales are not something this pipeline writes
        info = np.iinfo(zp.dtype)
        s, z = float(scale.reshape(-1)[0]), float(zp.reshape(-1)[0])
        out[n.input[0]] = {"min": (info.min - z) * s, "max": (info.max - z) * s, "scale": s}
    return out


def clamps(float_model: object) -> dict[str, list[float]]:
    """Tensors a Relu or Clip produces in the float graph, with their bounds.
    ORT's QDQ quantizer folds such an op into its output's quantization range
    and drops it, so in the quantized graph the tensor holds the value before
    the clamp: coverage applies the clamp before it counts clipping."""
    from onnx import numpy_helper

    g = float_model.graph  # type: ignore[attr-defined]
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consumers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    out: dict[str, list[float]] = {}
    for n in g.node:
        if n.op_type == "Relu":
            out[n.output[0]] = [0.0, float("inf")]
        elif n.op_type == "Clip":
            lo, hi = -float("inf"), float("inf")
            for a in n.attribute:  # opset < 11 keeps the bounds in attributes
                lo = a.f if a.name == "min" else lo
                hi = a.f if a.name == "max" else hi
            if len(n.input) > 1 and n.input[1] in inits:
                lo = float(inits[n.input[1]])
            if len(n.input) > 2 and n.input[2] in inits:
                hi = float(inits[n.input[2]])
            out[n.output[0]] = [lo, hi]
        else:
            continue
        # folded away, the clamp's input carries the range (and the clamp) in the quantized graph
        if consumers.get(n.input[0]) == 1:
            out[n.input[0]] = out[n.output[0]]
    return out


def profile(
    method: str, arrays: dict[str, np.ndarray], model: object, float_model: object | None = None
) -> dict[str, Any]:
    n = next(iter(arrays.values())).shape[0]
    return {
        "schema": SCHEMA,
        "method": method,
        "samples": int(n),
        "inputs": {k: input_profile(v) for k, v in arrays.items()},
        "activations": activation_ranges(model) if model is not None else {},
        # JSON has no infinity: an open bound is null
        "clamps": {k: [None if abs(v) == float("inf") else v for v in b]
                   for k, b in (clamps(float_model) if float_model is not None else {}).items()},
    }  # fmt: skip


def read_profile(model_path: Path) -> dict[str, Any] | None:
    """The calibration profile a model carries, or None."""
    side = model_path.with_name(model_path.name + ".calibration.json")
    if side.is_file():
        return json.loads(side.read_text())
    if model_path.suffix.lower() != ".onnx":
        return None
    import onnx

    try:
        m = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends: the file is not an ONNX model
        raise BadInput(f"{model_path.name}: not an ONNX protobuf") from None
    for p in m.metadata_props:
        if p.key == KEY:
            return json.loads(p.value)
    return None


def first_feed(model_path: Path, arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]] | None:
    """The first sample of ``arrays`` as the model takes it (one feed), or None without samples."""
    import onnx

    from agent.errors import BadInput

    if not arrays:
        return None
    inputs = graph_inputs(onnx.load(str(model_path), load_external_data=False))
    missing = [k for k in inputs if k not in arrays]
    if missing:
        raise BadInput(f"the calibration set lacks model input(s) {', '.join(missing)}")
    return [{k: np.ascontiguousarray(arrays[k][0].reshape(feed_shape(k, tuple(arrays[k].shape[1:]), d)))
             for k, d in inputs.items()}]  # fmt: skip


def graph_inputs(model: Any) -> dict[str, list[Any]]:
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = i.type.tensor_type.shape.dim
        out[i.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    return out
