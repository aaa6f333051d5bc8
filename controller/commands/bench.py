"""edgebench bench: a timed run of one model on an agent (``--start both``:
a cold and a warm run, controller/starts.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from controller.commands.common import add_agent_options, add_db_option, execute, exit_code_of, finish, store
from controller.runopts import add_run_options
from controller.starts import MODES


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="benchmark a model on an agent")
    p.add_argument("model", help="model file (.onnx, .tflite)")
    add_run_options(p)
    p.add_argument(
        "--start", choices=MODES, default=None,
        help="cold: the runtime's cache (TensorRT engines, VX graphs, ORT's optimized model) emptied first;"
        " warm: used; both: one run of each, compared",
    )  # fmt: skip
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--json", metavar="FILE", default=None, help="write the result document here")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    return p


def run(args: argparse.Namespace) -> int:
    if getattr(args, "start", None) == "both":
        return _both(args)
    result, agent = execute(args, "bench")
    return finish(args, result, agent)


def _both(args: argparse.Namespace) -> int:
    from agent.validity import verdict_line
    from controller.report import terminal
    from controller.report.placement import use_color
    from controller.starts import comparison, run_starts

    results, agent = run_starts(args)
    for r in results:
        store(args, r, agent)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"starts": results}, indent=1))
    color = use_color()
    for r in results:
        print(terminal.render(r, color=color) + "\n")
    print(comparison(results))
    # the last line: the verdict over both starts, as LoadGen prints it
    bad = [f"{r['start']['mode']}: {'; '.join(r['validity']['reasons'])}" for r in results if _invalid(r)]
    print(verdict_line({"valid": not bad, "reasons": bad}))
    print(f"stored runs {', '.join(r.get('run_id', '?') for r in results)}", file=sys.stderr)
    return max(exit_code_of(r) for r in results)


def _invalid(result: dict) -> bool:
    return bool(result.get("validity")) and not result["validity"].get("valid") and bool(result.get("start"))
