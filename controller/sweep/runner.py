"""A sweep run through the session layer: every point's spec built and
checked before the first run (bad specs: one line, exit 2, nothing stored),
then one run per point, labelled ``sweep=<id>``, stored as it ends, its
figures in the sweep record, so that running the same command again resumes
(controller/sweep/record.py) and no point runs twice."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.errors import BadInput, EdgebenchError
from controller import specs
from controller.sweep import axes as sweep_axes
from controller.sweep import figures, preflight, report
from controller.sweep.record import Record, sweep_id

# options that do not change what a point measures: left out of the sweep id
_NOT_MEASURED = {
    "json", "md", "html", "plot", "quiet", "objective", "p99_max", "func", "command", "cmd",
    "agent", "token_file", "tls_ca", "tls_cert", "tls_key", "db", "sweep", "model",
}  # fmt: skip


def _base(args: argparse.Namespace) -> dict[str, Any]:
    return {
        k: v
        for k, v in sorted(vars(args).items())
        if k not in _NOT_MEASURED and isinstance(v, (str, int, float, bool, list, type(None)))
    }


def plan(args: argparse.Namespace) -> tuple[dict[str, list[Any]], list[dict[str, Any]], list[str]]:
    """(axes, points, labels), every point's spec built and checked against the model."""
    axes = sweep_axes.parse(list(args.sweep))
    sweep_axes.check_conflicts(axes, args)
    points = sweep_axes.points(axes)
    model = Path(args.model)
    if not model.is_file():
        raise BadInput(f"model file not found: {args.model}")
    fake = "0" * 64  # the real sha256 comes with the push; the spec checks do not need it
    labelled = []
    for p in points:
        lab = sweep_axes.label(p)
        try:
            spec = specs.build(
                "bench", sweep_axes.apply(args, p), fake, model.name, fake if args.inputs else None
            )
        except BadInput as exc:
            raise BadInput(f"sweep point {lab}: {exc}") from None
        labelled.append((lab, spec))
    preflight.check(model, labelled)
    return axes, points, [lab for lab, _ in labelled]


def run_sweep(session: Any, args: argparse.Namespace) -> tuple[dict, list[int]]:
    """Run (or resume) the sweep; (its report document, each point's exit code)."""
    from controller.session import exit_code, raise_bad_input, store

    axes, points, labels = plan(args)
    model = Path(args.model)
    sha = session.push(model)
    inputs = session.push_optional(getattr(args, "inputs", None), "inputs")
    sid = sweep_id(sha, axes, {**_base(args), "agent": session.agent_name})
    rec = Record.open(sid, model.name, axes, points)
    quiet = bool(getattr(args, "quiet", False))
    codes: list[int] = []
    for i, (point, lab) in enumerate(zip(points, labels, strict=True)):
        entry = rec.entries[i]
        if entry["done"]:
            codes.append(int((entry.get("figures") or {}).get("exit", 0)))
            if not quiet:
                print(f"sweep {sid} point {lab}: done in run {entry['run_id']}", file=sys.stderr)
            continue
        spec = specs.build("bench", sweep_axes.apply(args, point), sha, model.name, inputs_sha=inputs)
        spec.labels = {**spec.labels, "sweep": sid, "sweep_point": lab}
        spec.validate()
        result = None
        if entry["run_id"]:  # started before the controller went away: follow it, never rerun it
            try:
                result = session.follow(entry["run_id"])
            except EdgebenchError:
                rec.forget(i)  # the agent no longer has it
        if result is None:
            run_id = session.start(spec)
            rec.started(i, run_id)
            if not quiet:
                print(f"sweep {sid} point {lab}: run {run_id} on {session.addr}", file=sys.stderr)
            try:
                result = session.follow(run_id, progress_s=None if quiet else spec.warmup_s + spec.duration_s)
            except KeyboardInterrupt:
                session.interrupted(run_id, " (or run the same sweep again: it resumes)")
                raise
        raise_bad_input(result)
        store(result, session.agent_name, getattr(args, "db", None))
        code = exit_code(result)
        rec.finished(i, {**figures.of(result), "exit": code})
        codes.append(code)
    doc = report.document(rec.doc, args.objective, args.p99_max)
    return doc, codes


def write_outputs(doc: dict, args: argparse.Namespace) -> None:
    """--json, --md, --plot and --html (the HTML page embeds the plot)."""
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1))
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(report.markdown(doc))
    plot_path = Path(args.plot) if args.plot else None
    if plot_path is not None:
        from controller.sweep import plot

        plot.write(doc, plot_path)
    if args.html:
        import tempfile

        from controller.sweep import plot

        with tempfile.TemporaryDirectory() as tmp:
            png = plot_path if plot_path is not None else plot.write(doc, Path(tmp) / "sweep.png")
            report.write_html(doc, Path(args.html), png)
