"""What the agent-facing commands share: agent/TLS/DB options, a connection
for the commands that start no run, and the end of a run command (store,
--json, the summary). Running a spec is controller/session.py's."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from controller import session


def add_agent_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("agent")
    g.add_argument(
        "--agent", metavar="HOST:PORT", default=None, help="agent address (default: an embedded agent)"
    )
    g.add_argument("--token-file", metavar="F", default=None)
    g.add_argument("--tls-ca", metavar="F", default=None)
    g.add_argument("--tls-cert", metavar="F", default=None)
    g.add_argument("--tls-key", metavar="F", default=None)


def add_db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="results DB SQLAlchemy URL (default $EDGEBENCH_DB or SQLite)",
    )


def open_db(args: argparse.Namespace, what: str = "the results DB") -> Any:
    """The results DB of --db (session.open_db)."""
    return session.open_db(getattr(args, "db", None), what)


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[Any]:
    """An AgentClient for --agent, or for an embedded agent started for this
    call, for the commands that start no run (info, push, runs, cancel...)."""
    with session.Session.from_args(args) as s:
        yield s.client


def store(args: argparse.Namespace, result: dict, agent: str) -> str | None:
    """session.store into --db."""
    return session.store(result, agent, getattr(args, "db", None))


def finish(args: argparse.Namespace, result: dict, agent: str) -> int:
    """Store, write --json, print the summary; the exit code."""
    from controller.report import terminal
    from controller.report.placement import use_color

    db = store(args, result, agent)
    write_json(args, result)
    print(terminal.render(result, color=use_color()))
    print(session.saved_line(result, getattr(args, "json", None), db), file=sys.stderr)
    return session.exit_code(result)


def check_outputs(args: argparse.Namespace, *flags: str) -> None:
    """Each output file the command was given (``json``, ``html``...) can be
    written, checked before any run starts: a run must not be stored and
    then the command fail on its --json (exit 2 means nothing stored)."""
    import tempfile

    from agent.errors import BadInput

    for flag in flags:
        value = getattr(args, flag, None)
        if not value:
            continue
        path = Path(value)
        opt = f"--{flag.replace('_', '-')} {value}"
        if path.is_dir():
            raise BadInput(f"{opt}: is a directory, not a file")
        if path.exists():
            if not os.access(path, os.W_OK):
                raise BadInput(f"{opt}: not writable")
            continue
        where = path.parent
        while not where.exists() and where != where.parent:
            where = where.parent  # write_json creates the missing folders below it
        try:
            with tempfile.TemporaryFile(dir=where):
                pass
        except OSError as exc:
            raise BadInput(f"{opt}: cannot write there ({exc.strerror or exc})") from None


def write_json(args: argparse.Namespace, result: dict) -> None:
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
