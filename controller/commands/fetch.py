"""edgebench fetch: a run's result and files from an agent (also after a
disconnect: waits for a run still going), stored into the DB."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.runs.registry import FINAL
from controller.commands.common import add_agent_options, add_db_option, store
from controller.session import Session, exit_code


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("fetch", help="fetch a run's result and files from an agent into the DB")
    p.add_argument("run_id")
    add_agent_options(p)
    add_db_option(p)
    p.add_argument(
        "--out", default=None, help="directory for the run files (default ./edgebench-runs/RUN_ID)"
    )
    p.add_argument("--no-wait", action="store_true", help="do not wait for a run still in progress")
    p.add_argument("--no-files", action="store_true", help="only the result document")
    return p


def run(args: argparse.Namespace) -> int:
    from agent.errors import RunFailed

    out = Path(args.out or Path("edgebench-runs") / args.run_id)
    with Session.from_args(args) as session:
        rec = session.record(args.run_id)
        if rec["status"] not in FINAL:
            if args.no_wait:
                raise RunFailed(f"run {args.run_id} is {rec['status']}; fetch again when it ends")
            session.follow(args.run_id)
            rec = session.record(args.run_id)
        result = rec["result"]
        files = [] if args.no_files else rec["files"]
        for name in files:
            session.fetch(args.run_id, name, out / name)
        agent = session.agent_name
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    store(args, result, agent)
    print(f"{args.run_id}: {result.get('status')}; {len(files)} file(s) in {out}")
    return exit_code(result)
