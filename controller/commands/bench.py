"""edgebench bench: a timed run of one model on an agent."""

from __future__ import annotations

import argparse
from typing import Any

from controller.commands.common import add_agent_options, add_db_option, finish
from controller.runopts import add_kind_options
from controller.session import Session, run_model


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
    with Session.from_args(args) as session:
        result = run_model(session, "bench", args)
        agent = session.agent_name
    return finish(args, result, agent)
