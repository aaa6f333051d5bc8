"""edgebench localize MODEL --float FLOAT.onnx --inputs X.npz [validate's task
options and gates]: the first tensor where MODEL, as the device runs it,
departs from the float model in a way the task sees.

The verdict comes from a hybrid bisection (controller/localize/search.py)
over the float tensors the device model matches (controller/localize/graph.py):
each probe is one validate run through the session layer, stored, scored
with the given gates (mAP with --boxes/--labels, mask IoU, top-1, any
validate gate)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from controller.accuracy.gates import from_args as accuracy_gate_options
from controller.commands.common import add_agent_options, add_db_option, check_outputs, write_json
from controller.runopts import add_validation_options
from controller.session import Session


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "localize", help="the first tensor where the device departs from the float model"
    )
    p.add_argument("model", help="the device model (.onnx: QDQ or float)")
    p.add_argument("--float", required=True, metavar="FLOAT.onnx", help="the float model it came from")
    add_validation_options(p, reference=False)
    p.add_argument(
        "--tensor",
        action="append",
        default=[],
        metavar="NAME",
        help="a float tensor to cut at (repeatable): the search runs over these only",
    )
    p.add_argument(
        "--tap-mib",
        type=float,
        default=64.0,
        metavar="MIB",
        help="tapped tensors per run, in MiB per model per sample: the agent's memory bound (default 64)",
    )
    p.add_argument("--no-taps", action="store_true", help="the bisection only: no per-tensor SQNR runs")
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", metavar="FILE", default=None, help="write the localize report here")
    p.add_argument("--html", metavar="FILE", default=None, help="an HTML report with SQNR along the graph")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _inputs(args: argparse.Namespace) -> dict:
    from agent.validate.reference import load_npz

    if not args.inputs:
        raise BadInput("localize needs --inputs X.npz: the samples both models run")
    if not Path(args.inputs).is_file():
        raise BadInput(f"inputs file not found: {args.inputs}")
    return load_npz(Path(args.inputs), args.inputs)


def _check_fit(float_path: Path, feeds: dict) -> tuple[Any, dict]:
    """The inputs fit the float model (names and per-sample shapes), said in
    one line before anything runs."""
    from agent.validate.reference import Reference
    from controller.localize import graph

    g = graph.load(float_path, "the float model").graph
    inits = {t.name for t in g.initializer}
    declared = {
        i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
        for i in g.input
        if i.name not in inits
    }
    ref = Reference(feeds, {}, next(iter(feeds.values())).shape[0] if feeds else 0)
    try:
        return ref, ref.fit(declared, [])
    except BadInput as exc:  # Reference.fit speaks of a reference; here they are --inputs
        raise BadInput(str(exc).replace("the reference", "--inputs", 1)) from None


def _select(cuts: list, names: list[str]) -> list:
    if not names:
        return cuts
    by = {c.tensor: c for c in cuts}
    unknown = [n for n in names if n not in by]
    if unknown:
        near = ", ".join(c.tensor for c in cuts[:3])
        raise BadInput(
            f"--tensor {unknown[0]!r}: no matched tensor of that name ({len(cuts)} matched, e.g. {near})"
        )
    picked = sorted({by[n].index for n in names})
    out = []
    for i in picked:
        c = cuts[i]
        c.index = len(out)
        out.append(c)
    return out


def run(args: argparse.Namespace) -> int:
    from controller.localize import graph, report, runner, search
    from controller.reference import write_reference

    check_outputs(args, "json", "html")
    if args.html:
        from controller import extras

        extras.need("matplotlib", "--html")  # refused before any run, not after they are stored
    model, float_path = Path(args.model), Path(args.float)
    for p, what in ((model, "model"), (float_path, "float model")):
        if not p.is_file():
            raise BadInput(f"{what} file not found: {p}")
        if p.suffix.lower() != ".onnx":
            raise BadInput(f"{p.name}: localize reads ONNX graphs (.onnx); got {p.suffix or 'no suffix'}")
    feeds = _inputs(args)
    device, float_model = graph.load(model, "the model"), graph.load(float_path, "the float model")
    cuts = _select(graph.match(device, float_model), args.tensor)
    samples = _check_fit(float_path, feeds)
    acc = accuracy_gate_options(args)
    from controller.localize import taps
    from controller.validation import validation_spec

    vspec = validation_spec(args, model)
    gated = bool(vspec.gates or acc)
    if not gated and args.no_taps:
        raise BadInput(
            "--no-taps needs a gate to bisect with (e.g. --min-map50 X, --min-mask-iou X, --min-top1 X)"
        )
    if args.tap_mib <= 0:
        raise BadInput("--tap-mib must be positive")
    tap_batches = (
        []
        if args.no_taps
        else taps.batches(cuts, taps.sizes(float_model, feeds), int(args.tap_mib * (1 << 20)))
    )
    planned = len(tap_batches) + (search.planned_runs(len(cuts)) if gated else 0)
    say = (lambda line: None) if args.quiet else print
    print(
        f"localize: {len(cuts)} cut points in topological order; at most {planned} device runs: "
        f"{len(tap_batches)} tap runs (<= {args.tap_mib:g} MiB of tensors per model per sample)"
        + (
            f", float, device, then at most ceil(log2({len(cuts) + 1})) = "
            f"{math.ceil(math.log2(len(cuts) + 1))} hybrids"
            if gated
            else ""
        )
    )
    with runner.workdir() as d:
        ref_path = Path(d) / "ref.npz"
        write_reference(float_path, feeds, ref_path)  # the float model's outputs on this host's CPU
        args.reference = str(ref_path)
        plan = None
        if vspec.boxes or args.labels or acc:
            from agent.validate.reference import Reference, load_npz
            from controller.accuracy import validation as accuracy

            plan = accuracy.prepare(
                Reference.from_arrays(load_npz(ref_path, "the reference")), vspec, args.labels, acc
            )
            args.keep_outputs = bool(args.keep_outputs or plan.needs_outputs)
        with Session.from_args(args) as session:
            figures = runner.tap_runs(session, args, device, float_model, tap_batches, samples, Path(d), say)
            outcome = search.Outcome(None)
            scorer = runner.HybridScorer(session, args, device, float_model, cuts, plan, Path(d))
            if gated:
                scorer.on_probe = lambda p, label: say(
                    f"  {'pass' if p.passed else 'FAIL'} {p.metric} {report.num(p.value)}"
                    f"  at {label}  ({p.run_id})"
                )
                outcome = search.bisect(len(cuts), scorer)
            doc = report.document(args, cuts, outcome, scorer.results, planned, figures, len(tap_batches))
    write_json(args, doc)
    if args.html:
        from controller.localize import html

        html.write(doc, Path(args.html))
    print(report.render(doc))
    return 3 if doc["verdict"] and doc["verdict"]["method"].startswith("hybrid") else 0
