"""The float model's expected outputs, computed on this host's CPU: the golden
side of a later validate. REF.npz holds ``inputs/NAME`` and ``outputs/NAME``,
one sample per entry of the first axis (agent/validate/reference.py reads it
back). ``edgebench reference`` and ``optimize`` write it through here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.errors import BadInput, RunFailed
from agent.samples import check_samples
from agent.validate.reference import INPUT_PREFIX, OUTPUT_PREFIX


def _stack(per_sample: list[dict]) -> dict:
    """Outputs of every sample on a first sample axis; an output that carries
    its own batch axis of 1 is joined on it, so its samples mirror the inputs'."""
    import numpy as np

    out = {}
    for name in per_sample[0]:
        arrs = [np.asarray(o[name]) for o in per_sample]
        batch1 = all(a.ndim >= 1 and a.shape[0] == 1 for a in arrs)
        out[name] = np.concatenate(arrs, axis=0) if batch1 else np.stack(arrs)
    return out


def _onnx(model: Path, feeds: dict) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # fatal only: a failing node is said once, on our line, not in ORT's colours
    try:
        sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types for a malformed model
        raise BadInput(
            f"{model.name}: not a loadable ONNX model: {' '.join(str(exc).split())[:300]}"
        ) from None
    declared = {i.name: list(i.shape) for i in sess.get_inputs()}
    n, shapes = check_samples(feeds, declared, "the inputs file")
    types = {i.name: i.type for i in sess.get_inputs()}
    outs = []
    for k in range(n):
        x = {name: _cast(feeds[name][k].reshape(shapes[name]), types[name]) for name in declared}
        try:
            y = sess.run(None, x)
        except Exception as exc:
            # the inputs fit the declared shapes (checked above): the model failed inside
            raise RunFailed(
                f"sample {k}: inference failed inside the model: {' '.join(str(exc).split())[:300]}"
            ) from None
        outs.append({o.name: v for o, v in zip(sess.get_outputs(), y, strict=True)})
    return _stack(outs)


def _cast(a: Any, ort_type: str) -> Any:
    import numpy as np

    want = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}.get(
        ort_type
    )
    return a.astype(want) if want is not None and a.dtype != want else a


def _tflite(model: Path, feeds: dict) -> dict:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # a board's vendor build ships tflite_runtime instead (DESIGN.md)
        from tflite_runtime.interpreter import Interpreter
    try:
        it = Interpreter(model_path=str(model))
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise BadInput(f"{model.name}: not a loadable .tflite model: {exc}") from None
    ins = it.get_input_details()
    declared = {d["name"]: [int(x) if x > 0 else None for x in d["shape_signature"]] for d in ins}
    n, shapes = check_samples(feeds, declared, "the inputs file")
    for d in ins:
        if list(shapes[d["name"]]) != [int(x) for x in d["shape"]]:
            it.resize_tensor_input(d["index"], shapes[d["name"]], strict=False)
    it.allocate_tensors()
    outs = []
    for k in range(n):
        for d in ins:
            it.set_tensor(d["index"], feeds[d["name"]][k].reshape(shapes[d["name"]]).astype(d["dtype"]))
        it.invoke()
        outs.append({d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()})
    return _stack(outs)


def write_reference(model: Path, feeds: dict, out: Path) -> dict:
    """Run every sample through the float model on this host's CPU and save
    REF.npz (``inputs/NAME``, ``outputs/NAME``); returns the outputs."""
    import numpy as np

    suffix = model.suffix.lower()
    if suffix == ".onnx":
        outs = _onnx(model, feeds)
    elif suffix == ".tflite":
        outs = _tflite(model, feeds)
    else:
        raise BadInput(f"{model.name}: unknown model format (expected .onnx or .tflite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{INPUT_PREFIX}{k}": v for k, v in feeds.items()}
    arrays.update({f"{OUTPUT_PREFIX}{k}": v for k, v in outs.items()})
    with open(out, "wb") as f:
        np.savez(f, **arrays)
    return outs
