"""edgebench reference MODEL --inputs X.npz --out REF.npz: the float model's
expected outputs, computed here on CPU (the golden side of a later validate)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.errors import BadInput


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("reference", help="expected outputs of a float model on CPU, as .npz")
    p.add_argument("model", help="model file (.onnx, .tflite)")
    p.add_argument("--inputs", required=True, metavar="X.npz", help="input arrays keyed by input name")
    p.add_argument("--out", required=True, metavar="REF.npz")
    return p


def _load_inputs(path: str) -> dict:
    import numpy as np

    if not Path(path).is_file():
        raise BadInput(f"inputs file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise BadInput(f"{path}: not a readable .npz: {exc}") from None


def _check_names(given: dict, names: list[str]) -> None:
    missing = [n for n in names if n not in given]
    if missing:
        raise BadInput(f"inputs file lacks {', '.join(missing)}; model inputs: {', '.join(names)}")


def _onnx(model: Path, feeds: dict) -> dict:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types for a malformed model
        raise BadInput(
            f"{model.name}: not a loadable ONNX model: {' '.join(str(exc).split())[:300]}"
        ) from None
    names = [i.name for i in sess.get_inputs()]
    _check_names(feeds, names)
    try:
        outs = sess.run(None, {n: feeds[n] for n in names})
    except Exception as exc:
        raise BadInput(f"inputs do not fit the model: {' '.join(str(exc).split())[:300]}") from None
    return {o.name: v for o, v in zip(sess.get_outputs(), outs, strict=True)}


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
    _check_names(feeds, [d["name"] for d in ins])
    for d in ins:
        arr = feeds[d["name"]]
        if list(arr.shape) != list(d["shape"]):
            raise BadInput(f"input {d['name']} has shape {list(arr.shape)}, model wants {list(d['shape'])}")
        it.set_tensor(d["index"], arr.astype(d["dtype"]))
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


def run(args: argparse.Namespace) -> int:
    import numpy as np

    model = Path(args.model)
    if not model.is_file():
        raise BadInput(f"model file not found: {args.model}")
    feeds = _load_inputs(args.inputs)
    suffix = model.suffix.lower()
    if suffix == ".onnx":
        outs = _onnx(model, feeds)
    elif suffix == ".tflite":
        outs = _tflite(model, feeds)
    else:
        raise BadInput(f"{model.name}: unknown model format (expected .onnx or .tflite)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as f:
        np.savez(f, **outs)
    for name, v in outs.items():
        print(f"{name}: {v.dtype} {list(v.shape)}")
    print(f"wrote {args.out}")
    return 0
