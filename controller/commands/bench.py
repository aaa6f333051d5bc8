"""edgebench bench: a timed run of one model on an agent."""

from __future__ import annotations

import argparse
from typing import Any

from controller.commands.common import add_agent_options, add_db_option, execute, finish
from controller.runopts import add_run_options


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="benchmark a model on an agent")
    p.add_argument("model", help="model file (.onnx, .tflite)")
    add_run_options(p)
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", metavar="FILE", default=None, help="write the result document here")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    return p


def run(args: argparse.Namespace) -> int:
    result, agent = execute(args, "bench")
    return finish(args, result, agent)
