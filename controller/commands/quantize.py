"""edgebench quantize MODEL --calibration CAL.npz --out OUT: post-training
static quantization on the host (ONNX: ONNX Runtime QDQ; .tflite:
ai-edge-quantizer), with accelerator presets, nodes kept in float, an FP16
variant, and ``--validation VAL.npz --target METRIC>=X``: the fewest float
nodes that meet the target (exit 3 when nothing does)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.errors import EXIT_GATE_FAILED, BadInput
from agent.validate.reference import load_npz
from controller.quantize.fp16 import fp16_variant
from controller.quantize.onnx_static import METHODS, TYPES
from controller.quantize.options import options


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("quantize", help="INT8 post-training quantization, with an accuracy target")
    p.add_argument("model", help="a float model (.onnx, .tflite)")
    p.add_argument("--calibration", required=True, metavar="CAL.npz", help="calibration samples (first axis)")
    p.add_argument("--out", required=True, metavar="OUT", help="the quantized model")
    p.add_argument(
        "--preset", default=None, help="tensorrt, openvino, cpu/xnnpack, tidl: what the accelerator wants"
    )
    p.add_argument("--method", choices=METHODS, default=None, help="calibration method (default minmax)")
    p.add_argument(
        "--per-channel", action="store_true", default=None, help="per-channel weights (the default)"
    )
    p.add_argument(
        "--per-tensor", action="store_true", help="one scale per weight tensor (a target that needs it)"
    )
    p.add_argument("--activation-type", choices=TYPES, default=None, help="default uint8")
    p.add_argument("--weight-type", choices=TYPES, default=None, help="default int8")
    p.add_argument("--symmetric-activations", action="store_true", default=None)
    p.add_argument("--asymmetric-weights", action="store_true", help="weights with a zero point")
    p.add_argument("--exclude", nargs="+", default=[], metavar="NODE|OP_TYPE", help="kept in float")
    p.add_argument("--calibration-samples", type=int, default=None, metavar="N", help="use the first N")
    p.add_argument(
        "--fp16", action="store_true", help="also write OUT's FP16 variant (OUT-fp16.onnx) for GPUs"
    )
    p.add_argument("--validation", default=None, metavar="VAL.npz", help="held-out samples for --target")
    p.add_argument(
        "--target", default=None, metavar="METRIC>=X", help="cosine, sqnr_db, top1_agreement, mask_iou@T"
    )
    p.add_argument(
        "--budget", type=int, default=16, metavar="N", help="validation samples the search scores (16)"
    )
    p.add_argument("--json", default=None, metavar="FILE", help="the report as JSON")
    p.add_argument("--md", default=None, metavar="FILE", help="the report as Markdown")
    p.add_argument("--html", default=None, metavar="FILE", help="the report as HTML")
    return p


def _load(path: str | None, what: str) -> dict:
    if path is None:
        return {}
    if not Path(path).is_file():
        raise BadInput(f"{what} file not found: {path}")
    return load_npz(Path(path), path)


def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from controller.report import quantize as report

    ort.set_default_logger_severity(3)  # the quantizer's per-initializer warnings; errors still surface
    model, out = Path(args.model), Path(args.out)
    if not model.is_file():
        raise BadInput(f"model file not found: {args.model}")
    if (args.target is None) != (args.validation is None):
        raise BadInput("--target and --validation go together (the target is judged on the validation set)")
    if args.validation and Path(args.validation).resolve() == Path(args.calibration).resolve():
        raise BadInput(
            "--validation must not be the calibration set: it would judge the calibration on itself"
        )
    _check_out(model, out)
    cal = _load(args.calibration, "calibration")
    opts = options(args)
    suffix = model.suffix.lower()
    if suffix == ".tflite":
        if args.target or args.fp16:
            raise BadInput("--target and --fp16 apply to ONNX models")
        from controller.quantize import litert

        rep = litert.quantize(model, cal, out, opts)
    elif suffix == ".onnx":
        if args.target:
            from controller.quantize.target import Target, search

            val, target = _load(args.validation, "validation"), Target.parse(args.target)
            rep = search(model, cal, val, out, opts, target, budget=max(1, args.budget))
        else:
            from controller.quantize.onnx_static import quantize

            rep = quantize(model, cal, out, opts)
        if args.fp16:
            rep["fp16"] = fp16_variant(model, out.with_name(out.stem + "-fp16.onnx"))
    else:
        raise BadInput(f"{model.name}: unknown model format (expected .onnx or .tflite)")
    print(report.render(rep))
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
    if args.md:
        Path(args.md).write_text(report.markdown(rep))
    if args.html:
        Path(args.html).write_text(report.html_page(rep))
    return EXIT_GATE_FAILED if rep.get("target") and not rep.get("met") else 0


def _check_out(model: Path, out: Path) -> None:
    """--out must not be the input (the float model would be gone) and its
    directory must exist: a typo is not silently created."""
    targets = [out]
    if model.suffix.lower() == ".onnx":
        targets.append(out.with_name(out.stem + "-fp16.onnx"))
    for t in targets:
        if t.resolve() == model.resolve() or (t.exists() and t.samefile(model)):
            raise BadInput(f"--out {out} would overwrite the input model; choose another path")
    if not out.parent.is_dir():
        raise BadInput(f"--out {out}: directory {out.parent} does not exist")
    if out.is_dir():
        raise BadInput(f"--out {out} is a directory; give the quantized model's file name")
