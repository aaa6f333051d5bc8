"""edgebench artifacts --agent A: what an agent's store holds (stored
artifacts, then partial uploads), with size, requirements and last use."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from agent.errors import EXIT_OK, BadInput
from controller.commands.common import add_agent_options, connect


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("artifacts", help="list an agent's stored artifacts and partial uploads")
    add_agent_options(p)
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    return p


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "-"


def run(args: argparse.Namespace) -> int:
    if not args.agent:
        # an embedded agent's store is a fresh temporary one: nothing to list
        raise BadInput("edgebench artifacts needs --agent HOST:PORT")
    with connect(args) as client:
        listing = client.list_artifacts()
    if args.json:
        print(json.dumps(listing, indent=1))
        return EXIT_OK
    print(f"{'sha256':<14} {'size':>10} {'last used':<16} {'name':<28} requires")
    for a in listing["artifacts"]:
        size = _size(a["size_bytes"])
        if a["partial"]:
            size = f"{_size(a['size_bytes'])} of {_size(a['declared_bytes'])} (partial)"
        reqs = ",".join(a["requires"]) or "-"
        print(
            f"{a['sha256'][:12]:<14} {size:>10} {_when(a['last_used_unix']):<16} {a['name'][:28]:<28} {reqs}"
        )
    print(f"{_size(listing['used_bytes'])} used of a {_size(listing['quota_bytes'])} quota")
    return EXIT_OK
