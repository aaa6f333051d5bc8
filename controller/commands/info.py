"""edgebench info: the agent's fingerprint."""

from __future__ import annotations

import argparse
import json
from typing import Any

from controller.commands.common import add_agent_options, connect


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("info", help="an agent's board fingerprint")
    add_agent_options(p)
    p.add_argument("--json", action="store_true", help="print the fingerprint as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    from controller.report.terminal import fingerprint

    with connect(args) as client:
        info = client.info()
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(fingerprint({"agent": info}))
        accel = ", ".join(sorted(info.get("accelerators") or {})) or "none"
        print(f"accelerators {accel}")
    return 0
