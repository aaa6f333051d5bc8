"""Clipping and effective bits in an int8 ``.tflite`` (any quantizer:
ai-edge-quantizer, TensorFlow's converter, vendor tools), from each tensor's
own quantization parameters. LiteRT runs the model on the field samples with
every intermediate tensor kept; an activation's range is
``(qmin - zero_point) * scale .. (qmax - zero_point) * scale``.

- A float model input is quantized here, as the model's QUANTIZE op or the
  caller would do: its clipping is exact (values beyond half a step outside
  the range). Field samples that are integers already are fed as they are,
  and only their saturation shows.
- Inside the graph the values are already integers, so clipping shows as
  saturation: the share of values at the type's limits (an upper bound: a
  value that rounds to the limit counts too). A limit that stands for 0.0
  (zero point at qmin) is a fused ReLU's floor, not clipping.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput, one_line
from agent.samples import feed_shape
from controller.quantize.clipping import row

INT_TYPES = (np.int8, np.uint8, np.int16)


def _interpreter(model: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise BadInput("coverage of a .tflite needs LiteRT: pip install ai-edge-litert") from None
    try:
        with warnings.catch_warnings():  # preserve_all_tensors warns that it is for debugging: it is
            warnings.simplefilter("ignore", UserWarning)
            # without the default XNNPACK delegate: its fused kernels keep no intermediate tensors
            it = Interpreter(
                model_path=str(model),
                experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
        it.allocate_tensors()
    except Exception as exc:
        raise BadInput(f"{model.name}: not a loadable .tflite: {one_line(exc, 200)}") from None
    return it


def _params(t: dict[str, Any]) -> tuple[float, int] | None:
    q = t["quantization_parameters"]
    if t["dtype"] not in INT_TYPES or len(q["scales"]) != 1 or not q["scales"][0] > 0:
        return None  # float, int32 bias, per-axis weights
    return float(q["scales"][0]), int(q["zero_points"][0])


def _inputs(it: Any) -> dict[str, dict[str, Any]]:
    """The model's inputs by the names .npz files use: the signature's (as
    ``quantize`` and ``validate`` do), else the tensors' own."""
    sigs = it.get_signature_list()
    if sigs:
        key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
        by_index = {d["index"]: d for d in it.get_input_details()}
        runner = it.get_signature_runner(key)
        return {name: by_index[d["index"]] for name, d in runner.get_input_details().items()}
    return {d["name"]: d for d in it.get_input_details()}


def input_names(model: Path) -> list[str]:
    return list(_inputs(_interpreter(model)))


def tflite_clipping(model: Path, field: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per per-tensor-quantized activation (op outputs and model inputs)."""
    it = _interpreter(model)
    details = {t["index"]: t for t in it.get_tensor_details()}
    inputs = _inputs(it)
    missing = [n for n in inputs if n not in field]
    if missing:
        raise BadInput(f"the field set lacks model input(s) {', '.join(missing)}")
    acts = {d["index"] for d in inputs.values()}
    for op in it._get_ops_details():  # the public API lists tensors, not which ones ops produce
        if op["op_name"] != "DELEGATE":
            acts.update(int(i) for i in op["outputs"])
    rows_in = {d["index"]: name for name, d in inputs.items()}
    quant = {i: p for i in sorted(acts) if (p := _params(details[i])) is not None}
    n = next(iter(field.values())).shape[0]
    stats = {i: {"clipped": 0, "values": 0, "hist": None} for i in quant}
    for k in range(n):
        for name, d in inputs.items():
            shape = feed_shape(name, tuple(field[name].shape[1:]), [int(x) for x in d["shape"]])
            x = np.asarray(field[name][k], dtype=np.float64).reshape(shape)
            p = quant.get(d["index"])
            if p is None:
                it.set_tensor(d["index"], x.astype(d["dtype"]))
                continue
            s, z = p
            info = np.iinfo(d["dtype"])
            st = stats[d["index"]]
            if np.issubdtype(field[name].dtype, np.integer):  # already quantized: only saturation shows
                qi = np.asarray(field[name][k]).reshape(shape).astype(d["dtype"])
                st["clipped"] += int(np.count_nonzero((qi == info.min) | (qi == info.max)))
                st["values"] += qi.size
                st["saturated_input"] = True
                _add_hist(st, qi, info)
                it.set_tensor(d["index"], qi)
                continue
            q = np.rint(x / s) + z
            st["clipped"] += int(np.count_nonzero((q < info.min) | (q > info.max)))
            st["values"] += q.size
            qi = np.clip(q, info.min, info.max).astype(d["dtype"])
            _add_hist(st, qi, info)
            it.set_tensor(d["index"], qi)
        it.invoke()
        for i in quant:
            if i in rows_in:
                continue
            y = it.get_tensor(i)
            info = np.iinfo(y.dtype)
            st = stats[i]
            floor_is_zero = quant[i][1] == info.min  # a fused ReLU's floor
            at_limit = (y == info.max) if floor_is_zero else (y == info.min) | (y == info.max)
            st["clipped"] += int(np.count_nonzero(at_limit))
            st["values"] += y.size
            _add_hist(st, y, info)
    out = []
    for i, (s, z) in quant.items():
        info = np.iinfo(details[i]["dtype"])
        st = stats[i]
        hist = st["hist"] if st["hist"] is not None else np.zeros(int(info.max) - int(info.min) + 1, np.int64)
        r = row(rows_in.get(i, details[i]["name"]), st["clipped"], st["values"], hist,
                (info.min - z) * s, (info.max - z) * s, s, st["values"] // max(1, n))  # fmt: skip
        r["saturation"] = i not in rows_in or bool(st.get("saturated_input"))
        out.append(r)
    return out


def _add_hist(st: dict[str, Any], y: np.ndarray, info: Any) -> None:
    levels = np.asarray(y, dtype=np.int64).reshape(-1) - int(info.min)
    h = np.bincount(levels, minlength=int(info.max) - int(info.min) + 1)
    st["hist"] = h if st["hist"] is None else st["hist"] + h
