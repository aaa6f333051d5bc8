"""What the agent-facing commands share: agent/TLS/DB options, an agent
connection (embedded when no --agent), and running one run end to end."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.errors import BadInput, RunFailed
from agent.runs.registry import FINAL
from agent.spec import ValidateSpec
from controller import extras


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
    """The results DB; BadInput (one line, exit 2) saying how to get it on an
    install without sqlalchemy (``what`` names who needs it)."""
    extras.need("sqlalchemy", what)
    from controller.db import ResultsDB

    return ResultsDB(getattr(args, "db", None))


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[Any]:
    """An AgentClient for --agent, or for an embedded agent started for this call."""
    from controller.client import AgentClient

    if getattr(args, "agent", None):
        tls = (args.tls_ca, args.tls_cert, args.tls_key)
        with AgentClient(args.agent, args.token_file, *tls) as client:
            yield client
        return
    from controller.embedded import EmbeddedAgent

    with EmbeddedAgent() as emb, AgentClient(emb.address) as client:
        client.embedded = True
        yield client


def gates_failed(result: dict) -> list[dict]:
    return [g for g in result.get("gates") or [] if not g.get("passed", True)]


def exit_code_of(result: dict) -> int:
    if result.get("status") != "completed":
        return 2 if result.get("error_code") == "bad_input" else 1
    return 3 if gates_failed(result) else 0


def wait_result(client: Any, run_id: str, quiet: bool = False, total_s: float = 0.0) -> dict:
    """Watch the run (live progress on stderr) until it ends; returns the result document."""
    from controller.progress import Progress

    prog = Progress(total_s) if not quiet else None
    with prog or contextlib.nullcontext():
        for ev in client.watch(run_id):
            if prog is not None:
                prog.event(ev)
            if ev["kind"] == "result":
                break
    return final_result(client, run_id)


def final_result(client: Any, run_id: str) -> dict:
    """The result document of a run whose watch has ended (waits up to 60 s for it)."""
    for _ in range(600):  # the record turns final right after the result event
        rec = client.get_run(run_id)
        if rec["status"] in FINAL and rec["result"]:
            return rec["result"]
        time.sleep(0.1)
    raise RunFailed(f"run {run_id} did not finish (status {rec['status']})")


def push_model(client: Any, model: str) -> tuple[str, str]:
    p = Path(model)
    if not p.is_file():
        raise BadInput(f"model file not found: {model}")
    return client.push(p), p.name


def push_inputs(client: Any, args: argparse.Namespace) -> str | None:
    """Push --inputs FILE.npz when given; its sha256."""
    if not getattr(args, "inputs", None):
        return None
    if not Path(args.inputs).is_file():
        raise BadInput(f"inputs file not found: {args.inputs}")
    return client.push(args.inputs)


def agent_flags(args: argparse.Namespace, client: Any) -> str:
    """``--agent ADDR`` plus the auth options this call used, for a command to paste."""
    flags = [f"--agent {client.addr}"]
    for opt in ("token_file", "tls_ca", "tls_cert", "tls_key"):
        if getattr(args, opt, None):
            flags.append(f"--{opt.replace('_', '-')} {getattr(args, opt)}")
    return " ".join(flags)


def interrupted(client: Any, run_id: str, args: argparse.Namespace, resume: str = "") -> None:
    """Ctrl-C while watching: cancel an embedded run (that agent ends with us), or
    say how to collect a remote one, which goes on (`resume`: another way, appended)."""
    if getattr(client, "embedded", False):
        client.cancel_run(run_id)
    else:
        flags = agent_flags(args, client)
        hint = f"run {run_id} continues; collect it: edgebench fetch {run_id} {flags}{resume}"
        print(hint, file=sys.stderr)


def agent_name(client: Any) -> str:
    """The agent a result is stored under: its address, "" for the embedded one."""
    return "" if getattr(client, "embedded", False) else client.addr


def execute(
    args: argparse.Namespace,
    kind: str,
    reference: str | None = None,
    validation: ValidateSpec | None = None,
    after: Callable[[Any, dict], None] | None = None,
) -> tuple[dict, str]:
    """Push, start, watch, fetch the result. Bad input raises BadInput (nothing
    stored). ``reference`` is pushed too (validate), and ``after(client,
    result)`` runs while the agent is still connected (fetching run files)."""
    from controller.runopts import spec_from_args

    with connect(args) as client:
        sha, name = push_model(client, args.model)
        ref_sha = client.push(reference) if reference else None
        spec = spec_from_args(
            args, kind, sha, name, inputs_sha=push_inputs(client, args), reference_sha=ref_sha
        )
        if validation is not None:
            spec.validation = validation
            spec.validate()
        run_id = client.start_run(spec)
        if not getattr(args, "quiet", False):
            print(f"run {run_id} on {client.addr}", file=sys.stderr)
        try:
            result = wait_result(
                client, run_id, getattr(args, "quiet", False), spec.warmup_s + spec.duration_s
            )
        except KeyboardInterrupt:
            interrupted(client, run_id, args)
            raise
        agent = agent_name(client)
        raise_bad_input(result)
        if after is not None and result.get("status") == "completed":
            after(client, result)
    return result, agent


def raise_bad_input(result: dict) -> None:
    """A run the agent failed as bad input is the caller's error: exit 2, one
    line, nothing stored."""
    if result.get("status") == "failed" and result.get("error_code") == "bad_input":
        raise BadInput(str(result.get("error") or "bad input"))


def finish(args: argparse.Namespace, result: dict, agent: str) -> int:
    """Store, write --json, print the summary; the exit code."""
    from controller.report import terminal
    from controller.report.placement import use_color

    db = store(args, result, agent)
    write_json(args, result)
    print(terminal.render(result, color=use_color()))
    print(saved_line(result, getattr(args, "json", None), db), file=sys.stderr)
    return exit_code_of(result)


def store(args: argparse.Namespace, result: dict, agent: str) -> str | None:
    """Keep the result in the results DB (--db); a bad-input failure is never
    stored. Returns the DB's URL, or None when nothing was stored (an install
    without sqlalchemy stores nothing: ``saved_line`` says how to get it)."""
    if result.get("error_code") == "bad_input" or not extras.have("sqlalchemy"):
        return None
    db = open_db(args)
    try:
        db.store(result, agent)
    finally:
        db.close()
    return db.engine.url.render_as_string(hide_password=True)  # a postgres URL may hold a password


def saved_line(result: dict, json_path: str | None, db_url: str | None) -> str:
    """One line: where the result went, and the command that makes its HTML report."""
    run_id = result.get("run_id") or "RUN_ID"
    where = ([str(json_path)] if json_path else []) + ([f"results DB {db_url}"] if db_url else [])
    if db_url:
        return f"saved to {' and '.join(where)}; HTML report: edgebench report {run_id} --html report.html"
    if not where:
        return f"result not saved: no results DB on this install ({extras.INSTALL_HINT}), and no --json FILE"
    return (
        f"saved to {where[0]}; no results DB on this install: {extras.INSTALL_HINT} adds it and the "
        f"HTML report: edgebench report {json_path} --html report.html"
    )


def write_json(args: argparse.Namespace, result: dict) -> None:
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
