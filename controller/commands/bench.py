"""edgebench bench: a timed run of one model on an agent (``--start both``:
a cold and a warm run, controller/starts.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from controller.commands.common import add_agent_options, add_db_option, check_outputs, finish
from controller.runopts import add_kind_options
from controller.session import Session, exit_code, run_model, store


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="benchmark a model on an agent")
    p.add_argument("model", help="model file (.onnx, .tflite)")
    add_kind_options(p, "bench")
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", metavar="FILE", default=None, help="write the result document here")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    return p


def run(args: argparse.Namespace) -> int:
    check_outputs(args, "json", "md", "html", "plot")
    if getattr(args, "sweep", None):
        return _sweep(args)
    extra = [f"--{o}" for o in ("md", "html", "plot", "p99_max") if getattr(args, o, None)]
    if extra:
        raise BadInput(f"{extra[0].replace('_', '-')} applies to a sweep: give --sweep AXIS=V1,V2")
    if getattr(args, "start", None) == "both":
        return _both(args)
    with Session.from_args(args) as session:
        result = run_model(session, "bench", args)
        agent = session.agent_name
    return finish(args, result, agent)


def _sweep(args: argparse.Namespace) -> int:
    from controller.sweep import report
    from controller.sweep.runner import plan, run_sweep, write_outputs

    plan(args)  # every bad point: one line, exit 2, before any connection or run
    with Session.from_args(args) as session:
        doc, codes = run_sweep(session, args)
    write_outputs(doc, args)
    print(report.terminal(doc))
    return max(codes, default=0)


def _both(args: argparse.Namespace) -> int:
    from agent.validity import verdict_line
    from controller.report import terminal
    from controller.report.placement import use_color
    from controller.starts import comparison, run_starts, verdict

    with Session.from_args(args) as session:
        results = run_starts(session, args)
        agent = session.agent_name
    for r in results:
        store(r, agent, getattr(args, "db", None))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"starts": results}, indent=1))
    color = use_color()
    for r in results:
        print(terminal.render(r, color=color) + "\n")
    print(comparison(results))
    print(verdict_line(verdict(results)))  # the last line, as LoadGen prints it
    print(f"stored runs {', '.join(str(r.get('run_id')) for r in results)}", file=sys.stderr)
    return max(exit_code(r) for r in results)
