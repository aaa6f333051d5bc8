"""The controller's session layer: the one place that runs a spec on an agent.

    with Session.from_args(args) as s:          # --agent, or an embedded agent for this call
        sha = s.push(model)                     # once per file per session
        result = s.run(spec, on_event=...)      # start, watch (resumes after a drop), the result
    store(result, s.agent_name, db_url)         # the results DB; never a bad-input result

Commands, fleet, demo, optimize, soak, sweeps and pipelines all go through it;
they build a spec (controller/specs.py) and print what comes back.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.errors import BadInput, EdgebenchError, RunFailed
from agent.runs.registry import FINAL
from controller import extras

Event = Callable[[dict], None]

# the record turns final right after the result event; a bounded wait for it
_FINAL_WAIT_S = 60.0
_FINAL_POLL_S = 0.1


class Session:
    """One agent connection for one command: a remote agent or an embedded one."""

    def __init__(self, client: Any, embedded: bool = False, auth_flags: str = "") -> None:
        self.client = client
        self.embedded = embedded
        self.auth_flags = auth_flags  # --token-file/--tls-* as given, for a hint to paste
        self._pushed: dict[str, str] = {}
        self.bytes_sent = 0

    # -- opening ---------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def open(
        cls,
        agent: str | None = None,
        token_file: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        timeout: float = 10.0,
    ) -> Iterator[Session]:
        """A session on ``agent``, or on an embedded agent started for this call."""
        from controller.client import AgentClient

        if agent:
            given = {"token-file": token_file, "tls-ca": tls_ca, "tls-cert": tls_cert, "tls-key": tls_key}
            flags = " ".join(f"--{k} {v}" for k, v in given.items() if v)
            with AgentClient(agent, token_file, tls_ca, tls_cert, tls_key, timeout=timeout) as client:
                yield cls(client, embedded=False, auth_flags=flags)
            return
        from controller.embedded import EmbeddedAgent

        with EmbeddedAgent() as emb, AgentClient(emb.address, timeout=timeout) as client:
            client.embedded = True  # older callers look at the client
            yield cls(client, embedded=True)

    @classmethod
    def from_args(cls, args: Any) -> contextlib.AbstractContextManager[Session]:
        """The session a command's --agent/--token-file/--tls-* options name."""
        g = lambda name: getattr(args, name, None)  # noqa: E731 - not every command has every option
        return cls.open(g("agent"), g("token_file"), g("tls_ca"), g("tls_cert"), g("tls_key"))

    # -- identity ----------------------------------------------------------------
    @property
    def addr(self) -> str:
        return str(self.client.addr)

    @property
    def agent_name(self) -> str:
        """The agent a result is stored under: its address, "" for the embedded one."""
        return "" if self.embedded else self.addr

    def agent_flags(self) -> str:
        """``--agent ADDR`` plus the auth options this session used, for a command to paste."""
        return " ".join(x for x in (f"--agent {self.addr}", self.auth_flags) if x)

    # -- artifacts ---------------------------------------------------------------
    def push(self, path: str | Path, what: str = "model") -> str:
        """Push a file (once per session); its sha256. BadInput when it is missing."""
        from controller.client import sha256_file

        p = Path(path)
        key = str(p.resolve())
        if key in self._pushed:
            return self._pushed[key]
        if not p.exists():
            raise BadInput(f"{what} file not found: {path}")
        if not p.is_file():
            raise BadInput(f"{what} {path} is not a file")
        sha = sha256_file(p)
        st = self.client.stat(sha)
        if not st.present:
            self.bytes_sent += p.stat().st_size - int(st.committed_offset or 0)
        self.client.push(p, sha=sha)
        self._pushed[key] = sha
        return sha

    def push_optional(self, path: str | Path | None, what: str) -> str | None:
        return self.push(path, what) if path else None

    def fetch(self, run_id: str, name: str, dest: str | Path) -> Path:
        return self.client.fetch_file(run_id, name, dest)

    # -- runs ----------------------------------------------------------------------
    def start(self, spec: Any) -> str:
        return str(self.client.start_run(spec))

    def run(
        self,
        spec: Any,
        on_event: Event | None = None,
        quiet: bool = True,
        on_start: Callable[[str], None] | None = None,
        resume_hint: str = "",
    ) -> dict:
        """Start ``spec`` and follow it to its result document. A run the agent
        failed as bad input raises BadInput (the caller's error: nothing stored).
        Ctrl-C cancels an embedded run (that agent ends with us) or says how to
        collect a remote one, which goes on."""
        run_id = self.start(spec)
        if on_start is not None:
            on_start(run_id)
        elif not quiet:
            print(f"run {run_id} on {self.addr}", file=sys.stderr)
        d = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
        total_s = float(d.get("warmup_s") or 0) + float(d.get("duration_s") or 0)
        try:
            result = self.follow(run_id, on_event, progress_s=None if quiet else total_s)
        except KeyboardInterrupt:
            self.interrupted(run_id, resume_hint)
            raise
        raise_bad_input(result)
        return result

    def follow(
        self,
        run_id: str,
        on_event: Event | None = None,
        after_seq: int = 0,
        reconnect_s: float = 60.0,
        progress_s: float | None = None,
    ) -> dict:
        """Watch a run until its result event (reconnecting after a drop and
        resuming after the last event seen); the result document. With
        ``progress_s`` the live progress line is drawn on stderr."""
        from controller.progress import Progress

        prog = Progress(progress_s) if progress_s is not None else None
        with prog or contextlib.nullcontext():
            for ev in self.client.watch(run_id, after_seq=after_seq, reconnect_s=reconnect_s):
                if prog is not None:
                    prog.event(ev)
                if on_event is not None:
                    on_event(ev)
                if ev["kind"] == "result":
                    break
        return self.result(run_id)

    def result(self, run_id: str) -> dict:
        """The result document of a run whose watch has ended (a bounded wait for it)."""
        rec: dict = {}
        deadline = time.monotonic() + _FINAL_WAIT_S
        while time.monotonic() < deadline:
            rec = self.client.get_run(run_id)
            if rec["status"] in FINAL and rec["result"]:
                return rec["result"]
            time.sleep(_FINAL_POLL_S)
        raise RunFailed(f"run {run_id} did not finish (status {rec.get('status')})")

    def record(self, run_id: str) -> dict:
        return self.client.get_run(run_id)

    def cancel(self, run_id: str) -> dict:
        return self.client.cancel_run(run_id)

    def alive(self) -> bool:
        """Does the agent still answer (a cheap call)?"""
        try:
            self.client.stat("0" * 64)
            return True
        except EdgebenchError:
            return False

    def interrupted(self, run_id: str, resume: str = "") -> None:
        """Ctrl-C while following: cancel an embedded run, or say how to collect a
        remote one (``resume``: another way, appended)."""
        if self.embedded:
            self.cancel(run_id)
        else:
            hint = (
                f"run {run_id} continues; collect it: edgebench fetch {run_id} {self.agent_flags()}{resume}"
            )
            print(hint, file=sys.stderr)


# -- one run of a command's options ---------------------------------------------
def run_model(
    session: Session,
    kind: str,
    args: Any,
    quiet: bool | None = None,
    labels: dict[str, str] | None = None,
    on_event: Event | None = None,
) -> dict:
    """Push ``args.model`` (and --inputs, --reference), build the spec of
    ``kind`` from the options, run it; the result document."""
    from controller import specs

    sha = session.push(args.model)
    inputs = session.push_optional(getattr(args, "inputs", None), "inputs")
    ref = session.push_optional(getattr(args, "reference", None), "reference")
    spec = specs.build(kind, args, sha, Path(args.model).name, inputs_sha=inputs, reference_sha=ref)
    if labels:
        spec.labels = {**spec.labels, **labels}
        spec.validate()
    q = bool(getattr(args, "quiet", False)) if quiet is None else quiet
    return session.run(spec, on_event=on_event, quiet=q)


# -- outcome ---------------------------------------------------------------------
def gates_failed(result: dict) -> list[dict]:
    return [g for g in result.get("gates") or [] if not g.get("passed", True)]


def exit_code(result: dict) -> int:
    """DESIGN.md's exit code for a result: 0 ok, 1 run failed, 2 bad input, 3 a gate failed."""
    if result.get("status") != "completed":
        return 2 if result.get("error_code") == "bad_input" else 1
    return 3 if gates_failed(result) else 0


def raise_bad_input(result: dict) -> None:
    """A run the agent failed as bad input is the caller's error: exit 2, one
    line, nothing stored."""
    if result.get("status") == "failed" and result.get("error_code") == "bad_input":
        raise BadInput(str(result.get("error") or "bad input"))


def open_db(db_url: str | None = None, what: str = "the results DB") -> Any:
    """The results DB; BadInput (one line, exit 2) saying how to get it on an
    install without sqlalchemy (``what`` names who needs it)."""
    extras.need("sqlalchemy", what)
    from controller.db import ResultsDB

    return ResultsDB(db_url)


def store(result: dict, agent: str = "", db_url: str | None = None) -> str | None:
    """Keep the result in the results DB; a bad-input failure is never stored.
    The DB's URL, or None when nothing was stored (an install without
    sqlalchemy stores nothing: ``saved_line`` says how to get it)."""
    if result.get("error_code") == "bad_input" or not extras.have("sqlalchemy"):
        return None
    db = open_db(db_url)
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
