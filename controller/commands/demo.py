"""edgebench demo: the main job end to end on an embedded agent (controller/demo.py)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo", help="bench, quantize, optimize, validate and coverage here (offline, about a minute)"
    )
    p.add_argument("--out", default="edgebench-demo", help="output directory (default ./edgebench-demo)")
    p.add_argument("--db", metavar="URL", default=None)
    p.add_argument("--duration", type=float, default=5.0, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument(
        "--no-pipeline", action="store_true", help="the bench only, without quantize/optimize/coverage"
    )
    p.add_argument(
        "--no-yolo", action="store_true", help="without the YOLOv8n headline (fully INT8 vs --target, ~2 min)"
    )
    return p


def run(args: argparse.Namespace) -> int:
    from controller.demo import run_demo

    return run_demo(
        args.out,
        db_url=args.db,
        duration_s=args.duration,
        warmup_s=args.warmup,
        pipeline=not args.no_pipeline,
        yolo=not args.no_yolo,
    )
