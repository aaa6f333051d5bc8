"""edgebench reference MODEL --inputs X.npz --out REF.npz: the float model's
expected outputs, computed here on CPU (controller/reference.py), the golden
side of a later validate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from agent.validate.reference import load_npz
from controller.reference import write_reference


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("reference", help="expected outputs of a float model on CPU, as .npz")
    p.add_argument("model", help="model file (.onnx, .tflite)")
    p.add_argument("--inputs", required=True, metavar="X.npz", help="input arrays keyed by input name")
    p.add_argument("--out", required=True, metavar="REF.npz")
    return p


def _load_inputs(path: str) -> dict:
    if not Path(path).is_file():
        raise BadInput(f"inputs file not found: {path}")
    return load_npz(Path(path), path)


def run(args: argparse.Namespace) -> int:
    model = Path(args.model)
    if not model.is_file():
        raise BadInput(f"model file not found: {args.model}")
    feeds = _load_inputs(args.inputs)
    outs = write_reference(model, feeds, Path(args.out))
    n = next(iter(outs.values())).shape[0] if outs else 0
    for name, v in outs.items():
        print(f"{name}: {v.dtype} {list(v.shape)}")
    print(f"wrote {args.out}: {n} sample(s), inputs and expected outputs")
    return 0
