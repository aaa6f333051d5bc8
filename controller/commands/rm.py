"""edgebench rm --agent A ARTIFACT|RUN...: delete artifacts (by sha256, a
unique sha256 prefix or a unique name; partial uploads too) or finished runs
from an agent. A run in flight, or an artifact a queued or running run uses,
is refused (exit 2) and nothing is deleted for it."""

from __future__ import annotations

import argparse
import re
from typing import Any

from agent.errors import EXIT_OK, BadInput
from agent.runs.registry import valid_run_id
from controller.commands.common import add_agent_options, connect

_HEX = re.compile(r"^[0-9a-f]{6,64}$")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("rm", help="delete artifacts or finished runs from an agent")
    p.add_argument("targets", nargs="+", metavar="ARTIFACT|RUN", help="sha256 (prefix of 6+), name or run id")
    add_agent_options(p)
    return p


def resolve(target: str, artifacts: list[dict]) -> str:
    """A sha256 of ``artifacts`` for a full sha, a unique prefix or a unique name."""
    hits = [a for a in artifacts if a["sha256"] == target]
    if not hits and _HEX.match(target):
        hits = [a for a in artifacts if a["sha256"].startswith(target)]
    if not hits:
        hits = [a for a in artifacts if a["name"] == target]
    shas = sorted({a["sha256"] for a in hits})
    if not shas:
        raise BadInput(f"no artifact or run {target!r} on this agent (see edgebench artifacts / runs)")
    if len(shas) > 1:
        raise BadInput(
            f"{target!r} matches {len(shas)} artifacts ({', '.join(s[:12] for s in shas)}); be precise"
        )
    return shas[0]


def run(args: argparse.Namespace) -> int:
    if not args.agent:
        raise BadInput("edgebench rm needs --agent HOST:PORT")
    with connect(args) as client:
        listing = None
        # resolve every target before deleting any: a typo deletes nothing
        plan = []
        for target in args.targets:
            if valid_run_id(target):
                plan.append(("run", target))
                continue
            if listing is None:
                listing = client.list_artifacts()["artifacts"]
            plan.append(("artifact", resolve(target, listing)))
        for kind, key in plan:
            if kind == "run":
                freed = client.delete_run(key)["freed_bytes"]
                print(f"deleted run {key} ({freed} bytes)")
            else:
                got = client.delete_artifact(key)
                what = "partial upload" if got["partial"] else "artifact"
                print(f"deleted {what} {key[:12]} ({got['freed_bytes']} bytes)")
    return EXIT_OK
