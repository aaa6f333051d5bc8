"""edgebench quantize MODEL --calibration CAL.npz --out OUT: post-training
static quantization on the host (ONNX: ONNX Runtime QDQ; .tflite:
ai-edge-quantizer), with accelerator presets, nodes kept in float, an FP16
variant, and ``--validation VAL.npz --target METRIC>=X``: the fewest float
nodes that meet the target (exit 3 when nothing does); ``map50``/``map``
with validate's ``--boxes`` options, ``accuracy``, against ``--labels`` or
the float model. ``--explain MODEL-int8.onnx``: the hazards of a QDQ model
(``controller/quantize/hazards.py``), also a section of every report."""

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
    p.add_argument("model", help="a float model (.onnx, .tflite); with --explain, a QDQ model")
    p.add_argument("--calibration", default=None, metavar="CAL.npz", help="calibration samples (first axis)")
    p.add_argument("--out", default=None, metavar="OUT", help="the quantized model")
    p.add_argument(
        "--explain", action="store_true", help="read MODEL's quantization hazards (a QDQ .onnx); no output"
    )
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
    p.add_argument("--asymmetric-activations", action="store_false", dest="symmetric_activations",
                   help="activations with a zero point (uint8's default)")  # fmt: skip
    p.add_argument("--asymmetric-weights", action="store_true", help="weights with a zero point")
    p.add_argument("--exclude", nargs="+", default=[], metavar="NODE|OP_TYPE", help="kept in float")
    p.add_argument("--calibration-samples", type=int, default=None, metavar="N", help="use the first N")
    p.add_argument(
        "--fp16", action="store_true", help="also write OUT's FP16 variant (OUT-fp16.onnx) for GPUs"
    )
    p.add_argument("--validation", default=None, metavar="VAL.npz", help="held-out samples for --target")
    p.add_argument(
        "--target",
        default=None,
        metavar="METRIC>=X",
        help="cosine, sqnr_db, top1_agreement, mask_iou@T, nmse<=X; map50, map (with --boxes), accuracy",
    )
    p.add_argument(
        "--boxes", action="append", default=[], metavar="OUTPUT=DECODER", help="as validate: output0=yolov8"
    )
    p.add_argument("--labels", default=None, metavar="GT.json", help="COCO boxes or class ids (else: float)")
    p.add_argument(
        "--box-score", type=float, default=0.25, metavar="S", help="boxes scoring less are ignored"
    )
    p.add_argument("--nms-iou", type=float, default=0.5, metavar="IOU", help="decoders' class-wise NMS")
    p.add_argument("--max-det", type=int, default=300, metavar="N", help="boxes kept per sample")
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
    model = Path(args.model)
    if not model.is_file():
        raise BadInput(f"model file not found: {args.model}")
    if args.explain:
        return explain(args, model)
    if args.calibration is None or args.out is None:
        raise BadInput("quantize needs --calibration CAL.npz and --out OUT (or --explain MODEL)")
    out = Path(args.out)
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
            from controller.quantize.search import target_search
            from controller.quantize.target import Target
            from controller.quantize.task_score import TaskOptions

            target = Target.parse(args.target)
            val, task = _load(args.validation, "validation"), TaskOptions.from_args(args)
            rep = target_search(model, cal, val, out, opts, target, max(1, args.budget), task, print)
        else:
            from controller.quantize.calibration import first_feed
            from controller.quantize.hazards import explain as read_hazards
            from controller.quantize.onnx_static import quantize

            rep = quantize(model, cal, out, opts)
            rep["hazards"] = read_hazards(out, first_feed(out, cal), args.box_score if args.boxes else None)
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


def explain(args: argparse.Namespace, model: Path) -> int:
    """``--explain``: the hazards of a QDQ model, nothing written but the reports asked for."""
    from controller.quantize.calibration import first_feed
    from controller.quantize.hazards import explain as read_hazards
    from controller.report import quantize as report

    if model.suffix.lower() != ".onnx":
        raise BadInput(f"--explain reads a QDQ .onnx model, not {model.name}")
    cal = _load(args.calibration, "calibration")
    section = read_hazards(model, first_feed(model, cal), args.box_score if args.boxes else None)
    rep = {"model": str(model), "hazards": section}
    print(report.hazards_text(section))
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
    if args.md:
        Path(args.md).write_text(report.markdown(rep))
    if args.html:
        Path(args.html).write_text(report.html_page(rep))
    return 0


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
