"""edgebench pipeline PIPELINE.yaml: a whole application (pre-processing,
models, post-processing) at the camera's rate, timed stage by stage."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controller.commands.common import add_agent_options, add_db_option, store, write_json
from controller.runopts import add_kind_options
from controller.session import Session, exit_code, saved_line


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("pipeline", help="run an application pipeline (stages, models) at a frame rate")
    p.add_argument("file", metavar="PIPELINE.yaml", help="the stages (docs/usage.md: edgebench pipeline)")
    add_kind_options(p, "pipeline")
    p.add_argument(
        "--allow-code",
        action="store_true",
        help="let the embedded agent run user (code) stages: this executes the pushed Python",
    )
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", metavar="FILE", default=None, help="write the result document here")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    return p


def run(args: argparse.Namespace) -> int:
    from controller.pipeline import load
    from controller.pipeline import run as prun
    from controller.report import terminal
    from controller.report.placement import use_color

    loaded = load.load(args.file, keep_outputs=args.keep_outputs)  # bad files end here, before any push
    with Session.from_args(args) as session:
        result = prun.run(session, args, loaded)
        agent = session.agent_name
    db = store(args, result, agent)
    write_json(args, result)
    print(terminal.render(result, color=use_color()))
    print(saved_line(result, args.json, db), file=sys.stderr)
    return exit_code(result)
