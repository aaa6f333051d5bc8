"""edgebench validate MODEL --reference REF.npz: run every reference sample on
the device, through the same runtime, accelerator and options as a bench, and
compare its outputs with the reference: tensor metrics, the task metrics that
catch what they hide (top-k agreement, mask IoU, box matching), gates (exit
3), and an optional metric plugin run here on the fetched outputs."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import tempfile
from pathlib import Path
from typing import Any

from agent.errors import BadInput, one_line
from agent.spec import GATES, ValidateSpec
from controller.accuracy.gates import ACCURACY_GATES
from controller.commands.common import add_agent_options, add_db_option, execute, finish
from controller.runopts import add_run_options

_PLUGIN_GATE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


def _gate_value(text: str) -> tuple[str, float]:
    """``X`` (every output) or ``OUTPUT=X``; output names may hold '=' themselves."""
    out, sep, val = text.rpartition("=")
    try:
        return (out if sep else "*"), float(val)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or OUTPUT=NUMBER, got {text!r}") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("validate", help="compare a model's outputs on the device with a reference")
    p.add_argument("model", help="model file (.onnx, .tflite)")
    p.add_argument("--reference", required=True, metavar="REF.npz", help="from `edgebench reference`")
    add_run_options(p, timed=False)  # every sample runs once: no warm-up or duration
    g = p.add_argument_group("validation")
    for gate, (metric, higher) in {**GATES, **ACCURACY_GATES}.items():
        g.add_argument(
            "--" + gate.replace("_", "-"),
            dest=gate,
            action="append",
            type=_gate_value,
            default=[],
            metavar="[OUTPUT=]X",
            help=f"exit 3 when {metric} is {'below' if higher else 'above'} X, for every output or one",
        )
    g.add_argument(
        "--mask-threshold", type=float, default=0.5, metavar="T", help="for mask IoU (default 0.5)"
    )
    g.add_argument(
        "--boxes",
        action="append",
        default=[],
        metavar="OUTPUT=DECODER",
        help="a detector output decoded on the agent: yolov8, yolov5, picodet, or box rows "
        "such as dets=xyxy,score,class; recall/precision at --box-iou and mAP",
    )
    g.add_argument("--box-iou", type=float, default=0.5, metavar="IOU", help="box matching IoU")
    g.add_argument(
        "--box-score", type=float, default=0.25, metavar="S", help="boxes scoring less are ignored"
    )
    g.add_argument("--nms-iou", type=float, default=0.5, metavar="IOU", help="decoders' class-wise NMS")
    g.add_argument("--max-det", type=int, default=300, metavar="N", help="boxes kept per sample")
    g.add_argument(
        "--labels",
        default=None,
        metavar="GT.json",
        help="ground truth: COCO detection JSON (image k = sample k, model-input pixels) "
        "or a JSON list of class ids (one per sample)",
    )
    g.add_argument("--keep-outputs", action="store_true", help="store the device's outputs (outputs.npz)")
    g.add_argument(
        "--metric-plugin",
        default=None,
        metavar="MODULE:FUNCTION",
        help="your metric, run here: FUNCTION(outputs, reference, inputs) -> {name: number}",
    )
    g.add_argument(
        "--plugin-gate", action="append", default=[], metavar="NAME>=X", help="a gate on a plugin metric"
    )
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", metavar="FILE", default=None, help="write the result document here")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    return p


def validation_spec(args: argparse.Namespace, model: Path) -> ValidateSpec:
    gates: dict[str, dict[str, float]] = {}
    for gate in GATES:
        for out, value in getattr(args, gate, []) or []:
            gates.setdefault(gate, {})[out] = value
    from agent.validate.decode import check_layout

    boxes = {}
    for text in args.boxes:
        out, sep, layout = text.partition("=")
        if not sep or not out or not layout:
            raise BadInput(f"bad --boxes {text!r}: expected OUTPUT=DECODER, e.g. output0=yolov8")
        check_layout(layout)
        boxes[out] = layout
    spec = ValidateSpec(
        gates=gates,
        mask_threshold=args.mask_threshold,
        boxes=boxes,
        box_iou=args.box_iou,
        box_score=args.box_score,
        nms_iou=args.nms_iou,
        max_det=args.max_det,
        keep_outputs=bool(args.keep_outputs or args.metric_plugin),
        output_quantization=output_quantization(model),
    )
    spec.check()
    return spec


def accuracy_gates(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The gates read on the controller (mAP, accuracy): gate -> {output or '*': X}."""
    gates: dict[str, dict[str, float]] = {}
    for gate in ACCURACY_GATES:
        for out, value in getattr(args, gate, []) or []:
            gates.setdefault(gate, {})[out] = value
    return gates


def output_quantization(model: Path) -> dict[str, list[float]]:
    """(scale, zero point) of each integer graph output of an ONNX model that a
    QuantizeLinear with constant parameters produces. The agent has no ONNX
    parser for initializers (boards ship only a runtime); the controller reads
    them here and sends them with the spec."""
    if model.suffix.lower() != ".onnx":
        return {}
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:  # the board-only install: integer ONNX outputs are compared as they come
        print("edgebench: note: the onnx package is not installed; integer outputs are not dequantized")
        return {}
    try:
        m = onnx.load(str(model), load_external_data=False)
    except Exception:  # the agent reports an unloadable model in one line
        return {}
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    out = {}
    for o in m.graph.output:
        node = producer.get(o.name)
        if node is None or node.op_type != "QuantizeLinear" or len(node.input) < 2:
            continue
        scale = inits.get(node.input[1])
        zp = inits.get(node.input[2]) if len(node.input) > 2 else None
        if scale is None or scale.size != 1 or (zp is not None and zp.size != 1):
            continue
        out[o.name] = [float(scale.reshape(-1)[0]), float(zp.reshape(-1)[0]) if zp is not None else 0.0]
    return out


def _plugin(text: str) -> Any:
    mod, sep, fn = text.rpartition(":")
    if not sep or not mod or not fn:
        raise BadInput(f"bad --metric-plugin {text!r}: expected module:function or path.py:function")
    try:
        if mod.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(mod).stem, mod)
            if spec is None or spec.loader is None or not Path(mod).is_file():
                raise BadInput(f"--metric-plugin: no file {mod}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod)
    except BadInput:
        raise
    except Exception as exc:  # the user's module: any error is theirs, in one line
        raise BadInput(f"--metric-plugin {mod}: {one_line(f'{type(exc).__name__}: {exc}', 300)}") from None
    func = getattr(module, fn, None)
    if not callable(func):
        raise BadInput(f"--metric-plugin: {mod} has no function {fn}")
    return func


def _plugin_gates(texts: list[str]) -> list[tuple[str, str, float]]:
    out = []
    for t in texts:
        m = _PLUGIN_GATE.match(t)
        if m is None:
            raise BadInput(f"bad --plugin-gate {t!r}: expected NAME>=X or NAME<=X")
        out.append((m.group(1), m.group(2), float(m.group(3))))
    return out


def _run_plugin(
    func: Any, gates: list[tuple[str, str, float]], client: Any, result: dict, ref_path: Path
) -> None:
    """Fetch outputs.npz, call the plugin, add its numbers and gates to the result."""
    from agent.runs import files
    from agent.validate.reference import Reference, load_npz

    with tempfile.TemporaryDirectory() as d:
        local = client.fetch_file(result["run_id"], files.OUTPUTS, Path(d) / files.OUTPUTS)
        outputs = load_npz(local, "the device's outputs")
    ref = Reference.from_arrays(load_npz(ref_path, str(ref_path)))
    try:
        values = func(outputs, ref.outputs, ref.inputs)
        values = {str(k): float(v) for k, v in dict(values).items()}
    except Exception as exc:
        raise BadInput(f"--metric-plugin failed: {one_line(f'{type(exc).__name__}: {exc}', 300)}") from None
    val = result.setdefault("validation", {})
    val["plugin"] = values
    checks = []
    for name, op, x in gates:
        v = values.get(name)
        passed = v is not None and (v >= x if op == ">=" else v <= x)
        shown = (
            "missing from the plugin's result" if v is None else f"{v:.4g} {'meets' if passed else 'misses'}"
        )
        checks.append(
            {
                "name": "plugin",
                "passed": passed,
                "message": f"{name}: {shown} {op} {x:g}",
                "metric": name,
                "value": v,
                "threshold": x,
            }  # fmt: skip
        )
    val["gates"] = list(val.get("gates") or []) + checks
    val["passed"] = all(g["passed"] for g in val["gates"])
    result["gates"] = list(result.get("gates") or []) + checks


def _coverage(model: Path, ref: Path, extra: dict | None, result: dict) -> None:
    """A model that carries a calibration profile (edgebench quantize) gets the
    coverage line for the reference's inputs, as `edgebench coverage` prints it."""
    try:
        from controller.quantize.calibration import read_profile
        from controller.quantize.coverage import coverage, line

        if read_profile(model) is None:
            return
    except ImportError:  # the board-only install has no onnx to read the profile with
        print("edgebench: note: coverage needs the onnx package (pip install 'edgebench[controller]')")
        return
    from agent.validate.reference import Reference, load_npz

    r = Reference.from_arrays(load_npz(ref, str(ref)), extra)
    rep = coverage(model, r.inputs)
    kept = {k: rep[k] for k in ("clip_share", "warnings", "inputs")}
    result.setdefault("validation", {})["coverage"] = kept
    print(line(rep))


def run(args: argparse.Namespace) -> int:
    model, ref = Path(args.model), Path(args.reference)
    if not model.is_file():
        raise BadInput(f"model file not found: {args.model}")
    if not ref.is_file():
        raise BadInput(f"reference file not found: {args.reference}")
    # the reference is read here first: a bad one fails before anything is pushed
    from agent.validate.reference import Reference, load_npz

    extra = load_npz(Path(args.inputs), args.inputs) if args.inputs else None
    reference = Reference.from_arrays(load_npz(ref, args.reference), extra)
    vspec = validation_spec(args, model)
    steps = []
    plan = None
    acc_gates = accuracy_gates(args)
    if vspec.boxes or args.labels or acc_gates:
        from controller.accuracy import validation as accuracy

        plan = accuracy.prepare(reference, vspec, args.labels, acc_gates)
        vspec.keep_outputs = vspec.keep_outputs or plan.needs_outputs
        steps.append(lambda client, result: accuracy.apply(plan, client, result))
    if args.metric_plugin:
        func, gates = _plugin(args.metric_plugin), _plugin_gates(args.plugin_gate)
        steps.append(lambda client, result: _run_plugin(func, gates, client, result, ref))
    elif args.plugin_gate:
        raise BadInput("--plugin-gate needs --metric-plugin")

    def after(client: Any, result: dict) -> None:
        for step in steps:
            step(client, result)

    result, agent = execute(args, "validate", reference=str(ref), validation=vspec, after=after)
    if result.get("status") == "completed":
        _coverage(model, ref, extra, result)
        if plan is not None:
            for line in accuracy.summary_lines(result):
                print(line)
    return finish(args, result, agent)
