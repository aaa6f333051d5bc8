"""edgebench coverage MODEL --inputs FIELD.npz: does field data stay inside
what the quantized model was calibrated on? Any QDQ ONNX or int8 .tflite
(ranges from the model itself); input statistics from the profile
``edgebench quantize`` writes or ``--calibration CAL.npz``. Computed on this
host. ``--max-clip-share X`` fails (exit 3) when any input or layer clips
more; ``--min-effective-bits B`` when any layer uses fewer bits."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.errors import EXIT_GATE_FAILED, BadInput
from agent.validate.reference import load_npz


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("coverage", help="field data against a quantized model's calibrated ranges")
    p.add_argument("model", help="a quantized model: QDQ .onnx (any quantizer) or int8 .tflite")
    p.add_argument("--inputs", required=True, metavar="FIELD.npz", help="field samples (first axis)")
    p.add_argument(
        "--calibration", default=None, metavar="CAL.npz",
        help="the calibration samples: input statistics for a model without edgebench's profile",
    )  # fmt: skip
    p.add_argument(
        "--max-clip-share", type=float, default=None, metavar="X",
        help="exit 3 when any input or layer clips more than this share of its values",
    )  # fmt: skip
    p.add_argument(
        "--min-effective-bits", type=float, default=None, metavar="B",
        help="exit 3 when any layer's field values use fewer effective bits (0..8)",
    )  # fmt: skip
    p.add_argument("--json", default=None, metavar="FILE")
    return p


def run(args: argparse.Namespace) -> int:
    from controller.quantize.coverage import coverage
    from controller.report.coverage import render

    model, field = Path(args.model), Path(args.inputs)
    paths = [(model, "model"), (field, "inputs")]
    if args.calibration:
        paths.append((Path(args.calibration), "calibration"))
    for path, what in paths:
        if not path.is_file():
            raise BadInput(f"{what} file not found: {path}")
    if args.max_clip_share is not None and not 0 <= args.max_clip_share <= 1:
        raise BadInput("--max-clip-share is a share in [0, 1]")
    if args.min_effective_bits is not None and not 0 <= args.min_effective_bits <= 8:
        raise BadInput("--min-effective-bits is a number of bits in [0, 8]")
    cal = load_npz(Path(args.calibration), args.calibration) if args.calibration else None
    rep = coverage(
        model, load_npz(field, args.inputs), args.max_clip_share, args.min_effective_bits, calibration=cal
    )
    for text in render(rep):
        print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
    return EXIT_GATE_FAILED if rep["passed"] is False else 0
