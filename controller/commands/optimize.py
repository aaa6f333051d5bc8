"""edgebench optimize: quantize on the host, then prove it on the board.

    edgebench optimize MODEL --calibration CAL.npz --validation VAL.npz [--target M>=X] [--agent A] [opts]
    edgebench optimize --original A.onnx --optimized B.onnx --validation VAL.npz [--agent A] [opts]

1. quantize MODEL on the host (honouring --target), unless both files are given;
2. the float reference from the original over VAL, on the host;
3. push both models and the reference;
4. on the device, through the same accelerator and options: bench both and
   validate both (placement recorded by each run; power when a meter is set);
5. every run stored, labelled ``pipeline=<id>``;
6. one report: size, p50/p99 and the speedup with its confidence interval,
   the accuracy before and after, placement before and after, energy per
   inference. Exit 3 when the target or a gate fails.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from agent.errors import EXIT_GATE_FAILED, BadInput
from agent.spec import GATES
from agent.validate.reference import load_npz
from controller.commands.common import (
    add_agent_options,
    add_db_option,
    connect,
    gates_failed,
    store,
    wait_result,
)
from controller.commands.validate import _gate_value, validation_spec
from controller.runopts import add_run_options, spec_from_args


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "optimize", help="quantize, then bench and validate original and INT8 on the board"
    )
    p.add_argument(
        "model", nargs="?", default=None, help="the float model (omit with --original/--optimized)"
    )
    p.add_argument("--original", default=None, metavar="A", help="the original model, with --optimized")
    p.add_argument("--optimized", default=None, metavar="B", help="a variant from another compressor")
    p.add_argument("--calibration", default=None, metavar="CAL.npz", help="calibration samples (quantize)")
    p.add_argument(
        "--validation", required=True, metavar="VAL.npz", help="held-out samples: reference and accuracy"
    )
    p.add_argument("--target", default=None, metavar="METRIC>=X", help="the accuracy target for quantize")
    p.add_argument("--preset", default=None, help="quantize preset: tensorrt, openvino, cpu, tidl")
    p.add_argument("--per-channel", action="store_true", default=None)
    p.add_argument(
        "--out-dir", default="edgebench-optimize", metavar="DIR", help="models, reference, reports"
    )
    add_run_options(p)
    g = p.add_argument_group("validation gates (on the optimized model)")
    for gate in GATES:
        flag = "--" + gate.replace("_", "-")
        g.add_argument(flag, dest=gate, action="append", type=_gate_value, default=[], metavar="[OUTPUT=]X")
    g.add_argument("--mask-threshold", type=float, default=0.5, metavar="T")
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", default=None, metavar="FILE", help="the report as JSON")
    p.add_argument("--md", default=None, metavar="FILE", help="the report as Markdown")
    p.add_argument("--html", default=None, metavar="FILE", help="the report as HTML")
    p.add_argument("--quiet", action="store_true")
    return p


def _models(args: argparse.Namespace, out_dir: Path) -> tuple[Path, Path, dict | None]:
    """(original, optimized, quantize report or None)."""
    if args.original or args.optimized:
        if not (args.original and args.optimized) or args.model:
            raise BadInput("give MODEL with --calibration, or both --original and --optimized")
        a, b = Path(args.original), Path(args.optimized)
        for f in (a, b):
            if not f.is_file():
                raise BadInput(f"model file not found: {f}")
        return a, b, None
    if not args.model or not args.calibration:
        raise BadInput("give MODEL with --calibration, or both --original and --optimized")
    a = Path(args.model)
    if not a.is_file():
        raise BadInput(f"model file not found: {a}")
    if Path(args.calibration).resolve() == Path(args.validation).resolve():
        raise BadInput("--validation must not be the calibration set")
    from controller.commands.quantize import options
    from controller.quantize.onnx_static import quantize

    qargs = argparse.Namespace(
        preset=args.preset,
        per_channel=args.per_channel,
        asymmetric_weights=False,
        exclude=[],
        calibration_samples=None,
        **dict.fromkeys(("method", "activation_type", "weight_type", "symmetric_activations")),
    )
    cal = load_npz(Path(args.calibration), args.calibration)
    b = out_dir / f"{a.stem}-int8{a.suffix}"
    if a.suffix.lower() != ".onnx":
        from controller.quantize import litert

        return a, b, litert.quantize(a, cal, b, options(qargs))
    if args.target:
        from controller.quantize.search import target_search
        from controller.quantize.target import Target

        val = load_npz(Path(args.validation), args.validation)
        rep = target_search(a, cal, val, b, options(qargs), Target.parse(args.target), say=_say(args))
        if not rep["met"]:
            return a, b, rep
    else:
        rep = quantize(a, cal, b, options(qargs), say=_say(args))
    return a, b, rep


def _sample_shapes(model: Path, val: dict) -> dict[str, list[int]]:
    """Each input's shape per inference, as validate feeds it (a batch axis of 1
    added when the model has one more dimension)."""
    from agent.validate.reference import feed_shape

    if model.suffix.lower() != ".onnx":
        return {}
    import onnx

    from controller.quantize.onnx_static import graph_inputs

    declared = graph_inputs(onnx.load(str(model), load_external_data=False))
    return {n: feed_shape(n, tuple(val[n].shape[1:]), d) for n, d in declared.items() if n in val}


def _say(args: argparse.Namespace) -> Any:
    return (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))


def _run(
    client: Any, args: argparse.Namespace, kind: str, sha: str, name: str, labels: dict, **kw: Any
) -> dict:
    spec = spec_from_args(args, kind, sha, name, **kw.get("spec", {}))
    spec.labels = {**spec.labels, **labels}
    if kind == "bench" and not spec.input_shapes:
        # a dynamic input (PP-OCR's Nx3xHxW) runs at the validation samples' shape, not at 1s
        spec.input_shapes = dict(kw.get("shapes") or {})
    if kw.get("validation") is not None:
        spec.validation = kw["validation"]
    spec.validate()
    run_id = client.start_run(spec)
    _say(args)(f"{kind} {name}: run {run_id}")
    return wait_result(client, run_id, quiet=True)


def run(args: argparse.Namespace) -> int:
    from controller.commands.reference import write_reference
    from controller.report import optimize as report

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    a, b, qrep = _models(args, out_dir)
    if qrep is not None and qrep.get("target") and not qrep.get("met"):
        print(f"edgebench: the target {qrep['target']} cannot be met with all-but-one node in float")
        return EXIT_GATE_FAILED
    t_quant = time.perf_counter() - t0
    val = load_npz(Path(args.validation), args.validation)
    ref = out_dir / "reference.npz"
    write_reference(a, dict(val), ref)
    shapes = _sample_shapes(a, val)
    # the gates judge the optimized model; the original is measured with the same metrics
    common = {"boxes": [], "box_iou": 0.5, "box_score": 0.25, "keep_outputs": False, "metric_plugin": None,
              "mask_threshold": args.mask_threshold}  # fmt: skip
    vspec = validation_spec(argparse.Namespace(**{g: getattr(args, g) for g in GATES}, **common), b)
    vspec_a = validation_spec(argparse.Namespace(**dict.fromkeys(GATES, []), **common), a)
    pipeline = "opt-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
    runs: dict[str, dict] = {}
    t1 = time.perf_counter()
    with connect(args) as client:
        ref_sha = client.push(ref)
        for tag, model, vs in (("original", a, vspec_a), ("optimized", b, vspec)):
            sha = client.push(model)
            labels = {"pipeline": pipeline, "variant": tag}
            runs[f"bench_{tag}"] = _run(client, args, "bench", sha, model.name, labels, shapes=shapes)
            runs[f"validate_{tag}"] = _run(
                client,
                args,
                "validate",
                sha,
                model.name,
                labels,
                spec={"reference_sha": ref_sha},
                validation=vs,
            )
        agent = "" if getattr(client, "embedded", False) else client.addr
    t_runs = time.perf_counter() - t1
    for r in runs.values():
        if r.get("status") == "failed" and r.get("error_code") == "bad_input":
            raise BadInput(str(r.get("error")))
        store(args, r, agent)
    rep = report.build(pipeline, a, b, qrep, runs, args.target)
    total = time.perf_counter() - t0
    rep["timing_s"] = {
        "quantize": round(t_quant, 3),
        "device_runs": round(t_runs, 3),
        "total": round(total, 3),
    }
    print(report.render(rep))
    html = Path(args.html) if args.html else out_dir / "report.html"
    html.write_text(report.html_page(rep))
    if args.md:
        Path(args.md).write_text(report.markdown(rep))
    (Path(args.json) if args.json else out_dir / "optimize.json").write_text(json.dumps(rep, indent=1))
    print(f"report: {html}")
    failed = any(r.get("status") != "completed" for r in runs.values())
    if failed:
        return 1
    return EXIT_GATE_FAILED if rep["failed"] or gates_failed(runs["validate_optimized"]) else 0
