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


def check_board(session: Any, axes: dict[str, list[Any]]) -> None:
    """Axis values this board cannot take, refused before any point runs (the
    agent would refuse that point only after the earlier ones were stored):
    an accelerator its profile lacks; a provider list with no provider this
    ONNX Runtime build has and no CPU to fall back on."""
    if "accelerator" not in axes and "provider" not in axes:
        return
    from agent.names import canonical_provider

    info = session.client.info()
    names = info.get("accelerator_names")
    for a in axes.get("accelerator", []):
        if names is not None and a not in names:
            have = ", ".join(names) or "none"
            raise BadInput(
                f"sweep point accelerator={a}: profile {info.get('profile')} has no accelerator {a!r};"
                f" available: {have}"
            )
    available = ((info.get("runtimes") or {}).get("onnxruntime") or {}).get("providers")
    for value in axes.get("provider", []):
        if available is None:
            break
        wanted = str(value).split("+")
        missing = [p for p in wanted if canonical_provider(p, available) is None]
        if missing and not any(canonical_provider(p, ["CPUExecutionProvider"]) for p in wanted):
            raise BadInput(
                f"sweep point provider={value}: provider {missing[0]!r} is not available in this"
                f" onnxruntime build; available: {', '.join(available)}"
            )


def run_sweep(session: Any, args: argparse.Namespace, planned: tuple | None = None) -> tuple[dict, list[int]]:
    """Run (or resume) the sweep (``planned``: ``plan(args)`` already made);
    (its report document, each point's exit code)."""
    from controller import extras
    from controller.session import open_db

    axes, points, labels = planned or plan(args)
    check_board(session, axes)
    model = Path(args.model)
    sha = session.push(model)
    inputs = session.push_optional(getattr(args, "inputs", None), "inputs")
    sid = sweep_id(sha, axes, {**_base(args), "agent": session.agent_name})
    rec = Record.open(sid, model.name, axes, points)
    quiet = bool(getattr(args, "quiet", False))
    codes: list[int] = []
    # one DB connection for the sweep (opening one migrates: most of a store's cost)
    db = open_db(getattr(args, "db", None)) if extras.have("sqlalchemy") else None
    try:
        _points(session, args, rec, points, labels, sha, inputs, sid, db, codes, quiet)
    finally:
        if db is not None:
            db.close()
    doc = report.document(rec.doc, args.objective, args.p99_max)
    return doc, codes


def _points(
    session: Any,
    args: argparse.Namespace,
    rec: Record,
    points: list[dict[str, Any]],
    labels: list[str],
    sha: str,
    inputs: str | None,
    sid: str,
    db: Any,
    codes: list[int],
    quiet: bool,
) -> None:
    from controller.session import exit_code, raise_bad_input

    model = Path(args.model)
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
            if result is not None and result.get("status") in ("cancelled", "interrupted"):
                result = None  # stopped before its end (Ctrl-C, an agent restart): this point runs again
                rec.forget(i)
        if result is None:

            def started(run_id: str, i: int = i, lab: str = lab) -> None:
                rec.started(i, run_id)  # on disk before the run is followed: a resume follows it
                if not quiet:
                    print(f"sweep {sid} point {lab}: run {run_id} on {session.addr}", file=sys.stderr)

            # Session.run: the embedded agent's board lock, progress, Ctrl-C (cancel or say how to collect)
            result = session.run(
                spec, quiet=quiet, on_start=started, resume_hint=" (or run the same sweep again: it resumes)"
            )
        raise_bad_input(result)
        if db is not None and result.get("error_code") != "bad_input":
            db.store(result, session.agent_name)
        code = exit_code(result)
        rec.finished(i, {**figures.of(result), "exit": code})
        codes.append(code)


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
