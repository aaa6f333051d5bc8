"""optimize's library side: quantize on the host (honouring --target), the
float reference, then both variants benched and validated on the agent
through one session, every run labelled ``pipeline=<id>``; one report
(controller/report/optimize.py). The command and the demo both call it."""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from agent.spec import GATES
from agent.validate.reference import load_npz
from controller import specs
from controller.reference import write_reference
from controller.session import Session, store
from controller.validation import validation_spec

Say = Callable[[str], None]


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
    from controller.quantize.onnx_static import quantize
    from controller.quantize.options import options

    qargs = argparse.Namespace(
        preset=args.preset,
        per_channel=args.per_channel,
        per_tensor=getattr(args, "per_tensor", False),
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
        from controller.quantize.task_score import TaskOptions

        target = Target.parse(args.target)  # a task target reads validate's --boxes/--labels
        task = TaskOptions.from_args(args)
        rep = target_search(a, cal, val, b, options(qargs), target, task=task, say=say_for(args))
        if not rep["met"]:
            return a, b, rep
    else:
        rep = quantize(a, cal, b, options(qargs), say=say_for(args))
    return a, b, rep


def _sample_shapes(model: Path, val: dict) -> dict[str, list[int]]:
    """Each input's shape per inference, as validate feeds it (a batch axis of 1
    added when the model has one more dimension)."""
    from agent.samples import feed_shape

    if model.suffix.lower() != ".onnx":
        return {}
    import onnx

    from controller.quantize.calibration import graph_inputs

    declared = graph_inputs(onnx.load(str(model), load_external_data=False))
    return {
        n: feed_shape(n, tuple(val[n].shape[1:]), d, "the validation set")
        for n, d in declared.items()
        if n in val
    }


def _session(args: argparse.Namespace, session: Session | None) -> Any:
    """The caller's session (a fleet's board), or one from the command's flags."""
    return contextlib.nullcontext(session) if session is not None else Session.from_args(args)


def _check_accelerator(args: argparse.Namespace, session: Session | None = None) -> None:
    """BadInput naming what the board has when --accelerator is not among them."""
    with _session(args, session) as s:
        info = s.client.info()
    names = info.get("accelerator_names")
    if names is not None and args.accelerator not in names:
        have = ", ".join(names) or "none"
        raise BadInput(
            f"profile {info.get('profile')} has no accelerator {args.accelerator!r}; available: {have}"
        )


def _accuracy_plans(args: argparse.Namespace, ref: Path, vspec_a: Any, vspec_b: Any) -> dict[str, Any]:
    """validate's accuracy plans (decoded reference boxes, labels) per variant; the
    accuracy gates judge only the optimized model."""
    from controller.accuracy.gates import from_args as accuracy_gate_options

    gates = accuracy_gate_options(args)
    if not (vspec_b.boxes or getattr(args, "labels", None) or gates):
        return {}
    from agent.validate.reference import Reference
    from controller.accuracy import validation as accuracy

    reference = Reference.from_arrays(load_npz(ref, str(ref)), None)
    plans = {
        "original": accuracy.prepare(reference, vspec_a, args.labels, {}),
        "optimized": accuracy.prepare(reference, vspec_b, args.labels, gates),
    }
    for plan in plans.values():
        plan.vspec.keep_outputs = plan.vspec.keep_outputs or plan.needs_outputs
    return plans


def _worst_pictures(session: Session, plan: Any, result: dict, val: dict, out_dir: Path) -> list[dict]:
    """For each decoded output's worst samples (validate's ranking by per-sample AP50):
    the reference's and the device's boxes drawn side by side on the input, PNG base64."""
    import base64

    from agent import rundir as files
    from agent.validate import boxfile
    from controller.report.optimize_plots import boxes_side_by_side_png

    local = session.fetch(result["run_id"], files.BOXES, out_dir / "boxes-optimized.npz")
    device, _ = boxfile.load(local)
    image = next((v for v in val.values() if v.ndim == 4), None)
    if image is None:
        return []
    out = []
    for name, ref_dets in plan.reference_dets.items():
        det = ((result.get("validation") or {}).get("detection") or {}).get(name) or {}
        for w in (det.get("worst") or [])[:3]:
            k = w["sample"]
            png = boxes_side_by_side_png(image[k], ref_dets[k], device[name][k], plan.vspec.box_score)
            out.append({"output": name, "sample": k, "ap50": w["value"],
                        "png": base64.b64encode(png).decode()})  # fmt: skip
    return out


def say_for(args: argparse.Namespace) -> Say:
    return (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))


def _run(
    session: Session, args: argparse.Namespace, kind: str, sha: str, name: str, labels: dict, **kw: Any
) -> dict:
    spec = specs.from_options(args, kind, sha, name, **kw.get("spec", {}))
    spec.labels = {**spec.labels, **labels}
    if kind == "bench" and not spec.input_shapes:
        # a dynamic input (PP-OCR's Nx3xHxW) runs at the validation samples' shape, not at 1s
        spec.input_shapes = dict(kw.get("shapes") or {})
    if kw.get("validation") is not None:
        spec.validation = kw["validation"]
    spec.validate()
    say_for(args)(f"{kind} {name}: started")
    return session.run(spec)


def optimize(
    args: argparse.Namespace,
    out_dir: Path,
    session: Session | None = None,
    keep: Callable[[dict, str], None] | None = None,
) -> tuple[dict, dict[str, dict]]:
    """The whole pipeline: (the report, the four run results by name). When
    quantize cannot meet --target: ({"target_missed": TARGET, ...}, {}).
    ``session``: run on this agent (a fleet's board) instead of the flags';
    ``keep(result, agent)`` stores each run (default: the results DB)."""
    from controller.report import optimize as report

    if getattr(args, "accelerator", None):
        _check_accelerator(args, session)  # before minutes of quantizing, not after
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    a, b, qrep = _models(args, out_dir)
    if qrep is not None and qrep.get("target") and not qrep.get("met"):
        return {"target_missed": qrep["target"], "quantize": qrep}, {}
    t_quant = time.perf_counter() - t0
    val = load_npz(Path(args.validation), args.validation)
    ref = out_dir / "reference.npz"
    write_reference(a, dict(val), ref)
    shapes = _sample_shapes(a, val)
    # the gates judge the optimized model; the original is measured with the same metrics
    task = ("mask_threshold", "boxes", "box_iou", "box_score", "nms_iou", "max_det")
    common = {k: getattr(args, k, None) for k in task if getattr(args, k, None) is not None}
    vspec = validation_spec(argparse.Namespace(**{g: getattr(args, g) for g in GATES}, **common), b)
    vspec_a = validation_spec(argparse.Namespace(**dict.fromkeys(GATES, []), **common), a)
    plans = _accuracy_plans(args, ref, vspec_a, vspec)  # bad labels fail before anything is pushed
    pipeline = "opt-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
    runs: dict[str, dict] = {}
    pictures: list[dict] = []
    t1 = time.perf_counter()
    with _session(args, session) as session:
        ref_sha = session.push(ref, "reference")
        for tag, model, vs in (("original", a, vspec_a), ("optimized", b, vspec)):
            sha = session.push(model)
            labels = {"pipeline": pipeline, "variant": tag}
            runs[f"bench_{tag}"] = _run(session, args, "bench", sha, model.name, labels, shapes=shapes)
            runs[f"validate_{tag}"] = _run(
                session,
                args,
                "validate",
                sha,
                model.name,
                labels,
                spec={"reference_sha": ref_sha},
                validation=vs,
            )
            plan = plans.get(tag)
            if plan is not None and runs[f"validate_{tag}"].get("status") == "completed":
                from controller.accuracy import validation as accuracy

                accuracy.apply(plan, session, runs[f"validate_{tag}"])
                if tag == "optimized" and plan.reference_dets:
                    pictures = _worst_pictures(session, plan, runs[f"validate_{tag}"], val, out_dir)
        agent = session.agent_name
    t_runs = time.perf_counter() - t1
    for r in runs.values():
        if keep is not None:
            keep(r, agent)
        else:
            store(r, agent, getattr(args, "db", None))
    rep = report.build(pipeline, a, b, qrep, runs, args.target)
    rep["pictures"] = pictures
    rep["timing_s"] = {
        "quantize": round(t_quant, 3),
        "device_runs": round(t_runs, 3),
        "total": round(time.perf_counter() - t0, 3),
    }
    return rep, runs


def write_reports(
    rep: dict, out_dir: Path, html: str | None = None, md: str | None = None, json_path: str | None = None
) -> Path:
    """The HTML report (out_dir/report.html unless told), Markdown when asked, and
    the JSON (out_dir/optimize.json, and --json F too); the HTML's path."""
    import json

    from controller.report import optimize as report

    page = Path(html) if html else out_dir / "report.html"
    page.write_text(report.html_page(rep))
    if md:
        Path(md).write_text(report.markdown(rep))
    text = json.dumps(rep, indent=1)
    (out_dir / "optimize.json").write_text(text)  # always beside the models, as the docs say
    if json_path:
        Path(json_path).write_text(text)
    return page


def exit_code(rep: dict, runs: dict[str, dict]) -> int:
    """1 when a run failed; 3 when the target or a gate on the optimized model failed."""
    from agent.errors import EXIT_GATE_FAILED
    from controller.session import gates_failed

    if rep.get("target_missed"):
        return EXIT_GATE_FAILED
    if any(r.get("status") != "completed" for r in runs.values()):
        return 1
    return EXIT_GATE_FAILED if rep["failed"] or gates_failed(runs["validate_optimized"]) else 0
