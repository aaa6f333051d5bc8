"""edgebench push: upload artifacts (a re-push moves no bytes)."""

from __future__ import annotations

import argparse
from typing import Any

from controller.commands.common import add_agent_options, connect


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("push", help="upload model/input files to an agent")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_agent_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent.errors import BadInput

    for f in args.files:
        if not Path(f).is_file():
            raise BadInput(f"file not found: {f}")
    with connect(args) as client:
        for f in args.files:
            print(f"{client.push(f)}  {f}")
    return 0
