"""edgebench compare RUN_A RUN_B: throughput/latency deltas and placement changes."""

from __future__ import annotations

import argparse
import json
from typing import Any

from controller.commands.common import add_db_option


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compare", help="compare two results (RUN_ID or result.json each)")
    p.add_argument("run_a")
    p.add_argument("run_b")
    add_db_option(p)
    p.add_argument("--json", metavar="FILE", default=None)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from controller.commands.report import load_result
    from controller.report.compare import compare, render

    a, _ = load_result(args.run_a, args)
    b, _ = load_result(args.run_b, args)
    c = compare(a, b)
    print(render(c))
    if args.json:
        Path(args.json).write_text(json.dumps(c, indent=1))
    return 0
