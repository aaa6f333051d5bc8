"""edgebench demo: build the demo CNN, bench it on an embedded agent, show the result."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="build a demo CNN and benchmark it here (offline, < 1 minute)")
    p.add_argument("--out", default="edgebench-demo", help="output directory (default ./edgebench-demo)")
    p.add_argument("--db", metavar="URL", default=None)
    p.add_argument("--duration", type=float, default=8.0, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=float, default=2.0, help=argparse.SUPPRESS)
    return p


def run(args: argparse.Namespace) -> int:
    from controller.demo import run_demo

    return run_demo(args.out, db_url=args.db, duration_s=args.duration, warmup_s=args.warmup)
