"""edgebench optimize: quantize on the host, then prove it on the board.

    edgebench optimize MODEL --calibration CAL.npz --validation VAL.npz [--target M>=X] [--agent A] [opts]
    edgebench optimize --original A.onnx --optimized B.onnx --validation VAL.npz [--agent A] [opts]

1. quantize MODEL on the host (honouring --target), unless both files are given;
2. the float reference from the original over VAL, on the host;
3. push both models and the reference;
4. on the device, through the same accelerator and options: bench both and
   validate both (placement recorded by each run; power when a meter is set);
5. every run stored, labelled ``pipeline=<id>``;
6. one report: size, p50/p99 and the speedup with its confidence interval,
   the accuracy before and after, placement before and after, energy per
   inference. Exit 3 when the target or a gate fails.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from controller.commands.common import add_agent_options, add_db_option, check_outputs
from controller.optimize_options import add_optimize_options


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "optimize", help="quantize, then bench and validate original and INT8 on the board"
    )
    p.add_argument(
        "model", nargs="?", default=None, help="the float model (omit with --original/--optimized)"
    )
    add_optimize_options(p)
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", default=None, metavar="FILE", help="the report as JSON")
    p.add_argument("--md", default=None, metavar="FILE", help="the report as Markdown")
    p.add_argument("--html", default=None, metavar="FILE", help="the report as HTML")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from controller.optimize import exit_code, optimize, write_reports
    from controller.report import optimize as report

    check_outputs(args, "json", "md", "html")
    out_dir = Path(args.out_dir)
    rep, runs = optimize(args, out_dir)
    if rep.get("target_missed"):
        print(f"edgebench: the target {rep['target_missed']} cannot be met with all-but-one node in float")
    else:
        print(report.render(rep))
        print(f"report: {write_reports(rep, out_dir, args.html, args.md, args.json)}")
    return exit_code(rep, runs)
