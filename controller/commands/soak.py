"""``edgebench soak MODEL --duration 30m --window 10s [run options]``.

Sustained inference for the whole duration (30 minutes unless told), one
window record every ``--window``; the agent attributes any throughput drop
to the clock and temperature changes that coincide with it, and this command
prints the one-sentence story, exits 3 when ``--target-ips`` is missed, and
can write the HTML report (``--html FILE``).

Lossless watching: every window is journaled on the agent before it is
streamed; a cursor per run (controller/soak/cursor.py) lets ``edgebench soak
--attach RUN_ID`` resume after the last window it had, and show each window
exactly once across attachments. The live view is controller/soak/view.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent.errors import BadInput, EdgebenchError, RunFailed
from controller import specs
from controller.commands.common import add_agent_options, add_db_option, check_outputs, store, write_json
from controller.report.terminal import validity_lines
from controller.runopts import SOAK_WINDOW_S, add_soak_options
from controller.session import Session, exit_code, gates_failed, raise_bad_input
from controller.soak.cursor import Cursor
from controller.soak.view import SoakView


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "soak",
        help="sustained inference (default 30 minutes) with throttling found and attributed",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("model", nargs="?", help="model file (.onnx, .tflite); omit with --attach")
    add_soak_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--attach", metavar="RUN_ID", default=None, help="re-attach to a running or finished soak")
    g.add_argument("--html", metavar="FILE", default=None, help="write the HTML report here")
    g.add_argument("--json", metavar="FILE", default=None, help="write the result document here")
    add_agent_options(p)
    add_db_option(p)
    return p


def _check(args: argparse.Namespace) -> None:
    if args.attach and args.model:
        raise BadInput("give a MODEL or --attach RUN_ID, not both")
    if not args.attach and not args.model:
        raise BadInput("soak needs a MODEL (or --attach RUN_ID)")
    if args.window <= 0:
        raise BadInput("--window must be positive")
    if args.duration <= 0:
        raise BadInput("--duration must be positive")
    if args.window > args.duration:
        raise BadInput(f"--window ({args.window:g} s) is longer than --duration ({args.duration:g} s)")
    if args.target_ips is not None and args.target_ips <= 0:
        raise BadInput("--target-ips must be positive")


def run(args: argparse.Namespace) -> int:
    _check(args)
    check_outputs(args, "json", "html")
    with Session.from_args(args) as session:
        if args.attach:
            run_id, spec = args.attach, _attached_spec(session, args.attach)
        else:
            sha = session.push(args.model)
            inputs = session.push_optional(args.inputs, "inputs")
            spec = specs.build("soak", args, sha, Path(args.model).name, inputs_sha=inputs).to_dict()
            run_id = session.start(spec)
        try:
            result = _follow(session, run_id, spec)
        except KeyboardInterrupt:
            again = f" (or watch it again: edgebench soak --attach {run_id} {session.agent_flags()})"
            session.interrupted(run_id, again)
            raise
        raise_bad_input(result)  # nothing stored
        store(args, result, session.agent_name)
        write_json(args, result)
        if args.html:
            _write_html(session, run_id, result, Path(args.html))
    return _finish(result)


def _attached_spec(session: Session, run_id: str) -> dict:
    """The spec of the soak run `run_id`; BadInput for an unknown run or another kind."""
    try:
        rec = session.record(run_id)
    except BadInput as exc:
        if str(exc).startswith(f"agent {session.addr} "):  # unreachable, or the token refused
            raise
        raise BadInput(f"no run {run_id} on {session.addr}: {exc}") from None
    spec = rec["spec"] or {}
    if spec.get("kind") != "soak":
        raise BadInput(f"run {run_id} is a {spec.get('kind') or rec['kind']} run, not a soak")
    return spec


def _follow(session: Session, run_id: str, spec: dict) -> dict:
    """Show the run's windows live, each once, until its result; the result document."""
    soak = spec.get("soak") or {}
    cursor = Cursor(run_id)
    print(f"soak {run_id} on {session.addr}", flush=True)
    with SoakView(float(spec.get("duration_s") or 0), float(soak.get("window_s") or SOAK_WINDOW_S)) as view:
        view.resumed(cursor.windows)

        def shown(ev: dict) -> None:
            kind, payload = ev["kind"], ev["payload"]
            if not cursor.advance(ev["seq"], payload if kind == "window" else None):
                return
            if kind == "window":
                view.on_window(payload)
            elif kind == "sample":
                view.on_sample(payload)
            elif kind == "phase":
                view.on_phase(str(payload.get("phase")))
            elif kind == "log" and payload.get("message"):
                view.message(str(payload["message"]))

        result = session.follow(run_id, shown, after_seq=cursor.last_seq)
        cursor.save()
    cursor.drop()  # the run is over: the result holds every window
    return result


def _write_html(session: Session, run_id: str, result: dict, out: Path) -> None:
    """The HTML report, with the run's plot files fetched from the agent into a
    scratch run directory (a missing one is left out: no meter, no power.bin)."""
    from agent import rundir as files  # numpy: paid only when a report is written
    from controller.report.html import write_html

    with tempfile.TemporaryDirectory() as tmp:
        for name in files.PLOT_FILES:
            try:
                session.fetch(run_id, name, Path(tmp) / name)
            except EdgebenchError:
                pass
        write_html(result, Path(tmp), out)
    print(f"report: {out}")


def _finish(result: dict) -> int:
    """Print the soak's story; the exit code (a failed run raises its one-line error)."""
    soak = result.get("soak") or {}
    status = result.get("status")
    if soak.get("summary"):
        print(soak["summary"])
    if soak.get("cold_throughput_ips") is not None:
        sus = soak["sustained_throughput_ips"]
        print(
            f"cold {soak['cold_throughput_ips']:.2f} ips, sustained {sus:.2f} ips "
            f"(ratio {soak['sustained_ratio']:.3f}), stability {soak['stability']:.3f}, "
            f"verdict {soak.get('verdict')}"
        )
    if status == "failed":
        raise RunFailed(str(result.get("error") or "run failed"))
    if status != "completed":
        print(f"soak {status}: {result.get('error') or ''}".rstrip(": "), file=sys.stderr)
    else:
        for g in gates_failed(result):
            print(f"gate {g.get('name')} failed: {g.get('message')}", file=sys.stderr)
    print("\n".join(validity_lines(result, color=False)))  # warnings, then the verdict: the last line
    return exit_code(result)
