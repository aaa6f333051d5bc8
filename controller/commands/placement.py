"""edgebench placement: where every op ran (a placement-kind run), as a table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controller.commands.common import add_agent_options, add_db_option, check_outputs, store, write_json
from controller.runopts import add_kind_options
from controller.session import Session, exit_code, run_model, saved_line


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("placement", help="per-op placement of a model (accelerator or CPU fallback)")
    p.add_argument("model", help="model file (.onnx, .tflite)")
    add_kind_options(p, "placement")
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", metavar="FILE", default=None)
    p.add_argument("--max-rows", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from controller.report import placement as pr
    from controller.report.terminal import gate_lines

    check_outputs(args, "json")
    with Session.from_args(args) as session:
        result = run_model(session, "placement", args)
        agent = session.agent_name
    db = store(args, result, agent)
    write_json(args, result)
    color = pr.use_color()
    if result.get("placement"):
        print(pr.render(result["placement"], color=color, max_rows=args.max_rows))
    elif result.get("error"):
        print(f"run {result.get('status')}: {result['error']}")
    for line in gate_lines(result, color):
        print(line)
    print(saved_line(result, getattr(args, "json", None), db), file=sys.stderr)
    return exit_code(result)
