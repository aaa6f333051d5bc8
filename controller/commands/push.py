"""edgebench push: upload artifacts (a re-push moves no bytes), with the
portability requirements they carry; ``--check`` asks whether they can run on
the agent's board without uploading or running anything."""

from __future__ import annotations

import argparse
from typing import Any

from controller.commands.common import add_agent_options, connect


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("push", help="upload model/input files to an agent")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--requires",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what the artifact needs from the board, repeatable: KEY=VALUE, KEY>=VALUE or "
        "KEY<=VALUE with KEY one of tensorrt, sm, l4t, jetpack, dla_cores, profile, soc "
        "(e.g. --requires tensorrt=10.3 --requires sm=87 --requires dla_cores>=1)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="only ask whether the files can run on the agent's board (exit 0) or not "
        "(exit 2, naming each difference); nothing is uploaded",
    )
    add_agent_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent import portability
    from agent.errors import BadInput

    for f in args.files:
        if not Path(f).is_file():
            raise BadInput(f"file not found: {f}")
    portability.parse_all(args.requires)  # an unknown key is refused before connecting
    with connect(args) as client:
        if args.check:
            refused = []
            for f in args.files:
                answer = client.check(f, args.requires)
                if answer["runnable"]:
                    needs = ", ".join(answer["requires"]) or "no requirements"
                    print(f"ok  {f}  ({needs})")
                else:
                    refused.append(answer["message"])
            if refused:
                raise BadInput("; ".join(refused))
            return 0
        for f in args.files:
            print(f"{client.push(f, requires=args.requires)}  {f}")
    return 0
