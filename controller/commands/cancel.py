"""edgebench cancel: stop a run on an agent (a forgotten remote soak: Ctrl-C on
the controller leaves a remote run going, by design)."""

from __future__ import annotations

import argparse
from typing import Any

from agent.errors import EXIT_OK, BadInput
from agent.runs.registry import FINAL
from controller.commands.common import add_agent_options, connect


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "cancel", help="cancel a queued or running run on an agent (exit 0 cancelled, 2 no such run)"
    )
    p.add_argument("run_id", metavar="RUN_ID")
    add_agent_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    if not args.agent:
        # an embedded agent lives only as long as the command that started it
        raise BadInput("edgebench cancel needs --agent HOST:PORT: the agent the run is on")
    with connect(args) as client:
        # a run that had already ended, cancelled ones too, is "nothing to
        # cancel" (exit 2): the agent's CancelRun answers every ended run with
        # its record, so only the status before the call tells them apart
        before = client.get_run(args.run_id)["status"]  # BadInput "no run ..." for an unknown id
        if before in FINAL:
            raise BadInput(f"run {args.run_id} already {before}: nothing to cancel")
        rec = client.cancel_run(args.run_id)
    status = rec["status"]
    if status == "cancelled":
        print(f"run {rec['run_id']} cancelled")
        return EXIT_OK
    if status in FINAL:
        raise BadInput(f"run {rec['run_id']} already {status}: nothing to cancel")
    # the worker did not stop within the agent's wait: the cancel stands, the run ends soon
    print(f"run {rec['run_id']} cancelling (status {status})")
    return EXIT_OK
