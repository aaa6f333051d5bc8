"""edgebench coverage MODEL --inputs FIELD.npz: does field data stay inside
the calibration the quantized model carries? Input statistics against the
calibration profile, and the share each calibrated layer clips (computed on
this host with ONNX Runtime); ``--max-clip-share X`` gates (exit 3)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.errors import EXIT_GATE_FAILED, BadInput
from agent.validate.reference import load_npz


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("coverage", help="field data against a quantized model's calibration profile")
    p.add_argument(
        "model", help="a model written by `edgebench quantize` (it carries its calibration profile)"
    )
    p.add_argument("--inputs", required=True, metavar="FIELD.npz", help="field samples (first axis)")
    p.add_argument(
        "--max-clip-share", type=float, default=None, metavar="X", help="exit 3 when a layer clips more"
    )
    p.add_argument("--json", default=None, metavar="FILE")
    return p


def run(args: argparse.Namespace) -> int:
    from controller.quantize.coverage import coverage, line

    model, field = Path(args.model), Path(args.inputs)
    for path, what in ((model, "model"), (field, "inputs")):
        if not path.is_file():
            raise BadInput(f"{what} file not found: {path}")
    if args.max_clip_share is not None and not 0 <= args.max_clip_share <= 1:
        raise BadInput("--max-clip-share is a share in [0, 1]")
    rep = coverage(model, load_npz(field, args.inputs), args.max_clip_share)
    print(line(rep))
    for r in rep["inputs"]:
        print(f"  input {r['name']}: mean shift {max(r['mean_shift_sd'], key=abs):+.2f} sd, "
              f"std x{min(r['std_ratio']):.2f}..{max(r['std_ratio']):.2f}, "
              f"{r['outside_p01_p99_share']:.1%} outside the calibration's p01..p99")  # fmt: skip
    for a in [a for a in rep["activations"][:5] if a["clipped"]]:
        print(f"  layer {a['tensor']}: clips {a['clipped']} of {a['values']} values ({a['clip_share']:.2%})")
    if rep["gate"]:
        print(
            f"gate max_clip_share: {'PASS' if rep['gate']['passed'] else 'FAIL'} - {rep['gate']['message']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
    return EXIT_GATE_FAILED if rep["gate"] and not rep["gate"]["passed"] else 0
