"""edgebench validate MODEL --reference REF.npz: run every reference sample on
the device, through the same runtime, accelerator and options as a bench, and
compare its outputs with the reference: tensor metrics, the task metrics that
catch what they hide (top-k agreement, mask IoU, box matching), gates (exit
3), and an optional metric plugin run here on the fetched outputs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from controller import plugin
from controller.accuracy.gates import from_args as accuracy_gate_options
from controller.commands.common import add_agent_options, add_db_option, check_outputs, finish
from controller.runopts import add_validation_options
from controller.session import Session, run_model


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("validate", help="compare a model's outputs on the device with a reference")
    p.add_argument("model", help="model file (.onnx, .tflite)")
    add_validation_options(p)
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", metavar="FILE", default=None, help="write the result document here")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    return p


def _coverage(model: Path, ref: Path, extra: dict | None, result: dict) -> None:
    """A model that carries a calibration profile (edgebench quantize) gets the
    coverage line for the reference's inputs, as `edgebench coverage` prints it."""
    from agent.validate.reference import Reference, load_npz
    from controller.quantize.coverage import for_validate

    kept = for_validate(model, Reference.from_arrays(load_npz(ref, str(ref)), extra).inputs)
    if kept is not None:
        result.setdefault("validation", {})["coverage"] = kept


def run(args: argparse.Namespace) -> int:
    check_outputs(args, "json")
    model, ref = Path(args.model), Path(args.reference)
    if not model.is_file():
        raise BadInput(f"model file not found: {args.model}")
    if not ref.is_file():
        raise BadInput(f"reference file not found: {args.reference}")
    # the reference is read here first: a bad one fails before anything is pushed
    from agent.validate.reference import Reference, load_npz
    from controller.validation import validation_spec

    extra = load_npz(Path(args.inputs), args.inputs) if args.inputs else None
    reference = Reference.from_arrays(load_npz(ref, args.reference), extra)
    vspec = validation_spec(args, model)  # bad gates or boxes fail before anything is pushed
    plan = None
    acc_gates = accuracy_gate_options(args)
    if vspec.boxes or args.labels or acc_gates:
        # labels checked, the reference's boxes decoded here: bad input fails before the run
        from controller.accuracy import validation as accuracy

        plan = accuracy.prepare(reference, vspec, args.labels, acc_gates)
        args.keep_outputs = bool(args.keep_outputs or plan.needs_outputs)
    func = gates = None
    if args.metric_plugin:
        func, gates = plugin.load(args.metric_plugin), plugin.parse_gates(args.plugin_gate)
    elif args.plugin_gate:
        raise BadInput("--plugin-gate needs --metric-plugin")
    with Session.from_args(args) as session:
        result = run_model(session, "validate", args)
        if plan is not None and result.get("status") == "completed":
            accuracy.apply(plan, session, result)
        if func is not None and result.get("status") == "completed":
            plugin.apply(func, gates or [], session, result, ref)
        agent = session.agent_name
    if result.get("status") == "completed":
        _coverage(model, ref, extra, result)
        if plan is not None:
            for line in accuracy.summary_lines(result):
                print(line)
    return finish(args, result, agent)
