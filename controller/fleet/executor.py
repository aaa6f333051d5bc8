"""Runs a plan's work items: a thread per board, one run per board at a time.

Per item: the portability guard (CheckArtifact, no bytes move), push once
(an artifact already on the board moves no bytes; bytes sent are counted),
start, watch, evaluate the plan's gates, store. A board that stops answering
mid-plan is marked dropped with the reason and its remaining items wait for
`fleet resume`; the other boards finish. Every wait is bounded: connection
and call timeouts, and `drop_after` seconds of an unreachable agent while
watching."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import BadInput, EdgebenchError, one_line
from agent.runs.registry import FINAL
from controller.fleet import gates as fleet_gates
from controller.fleet import options
from controller.fleet.inventory import Board
from controller.fleet.plan import Job
from controller.fleet.store import FINISHED, FleetStore

Event = Callable[[str, dict], None]


@dataclass
class Item:
    job: Job
    board: Board
    model: str  # absolute path
    model_key: str  # as stored: relative to the plan file
    run_id: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.job.name, self.board.name, self.model_key)


@dataclass
class BoardState:
    """What the live table shows for one board."""

    board: str
    job: str = ""
    model: str = ""
    phase: str = "waiting"
    progress: float | None = None
    figure: str = ""
    done: int = 0
    total: int = 0
    status: str = ""
    history: list[str] = field(default_factory=list)


class Executor:
    def __init__(
        self,
        plan_id: str,
        base: Path,
        items: list[Item],
        store: FleetStore,
        on_event: Event | None = None,
        drop_after_s: float = 30.0,
        call_timeout_s: float = 10.0,
        infos: dict[str, dict] | None = None,
        hold: Callable[[Board, dict[str, str]], Any] | None = None,
    ) -> None:
        self.plan_id = plan_id
        self.base = base
        self.items = items
        self.store = store
        self.on_event = on_event or (lambda board, state: None)
        self.drop_after_s = drop_after_s
        self.call_timeout_s = call_timeout_s
        self.infos = infos or {}
        # labgrid: a context manager that holds the board's place while its items run
        self.hold = hold
        self.stop = threading.Event()
        self.states: dict[str, BoardState] = {}
        self.lock = threading.Lock()  # the DB engine is thread-safe; states are ours

    def run(self, join_poll_s: float = 0.2) -> None:
        """Run every item; returns when all boards are done (or on Ctrl-C, after
        telling the threads to start nothing new: in-flight runs go on and
        `fleet resume` collects them)."""
        by_board: dict[str, list[Item]] = {}
        for it in self.items:
            by_board.setdefault(it.board.name, []).append(it)
        threads = []
        for name, its in by_board.items():
            self.states[name] = BoardState(name, total=len(its))
            t = threading.Thread(target=self._board, args=(its,), name=f"fleet-{name}", daemon=True)
            threads.append(t)
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(join_poll_s)
        except KeyboardInterrupt:
            self.stop.set()
            raise

    # -- one board -------------------------------------------------------------
    def _board(self, items: list[Item]) -> None:
        if self.hold is None:
            self._board_items(items)
            return
        from controller.fleet.labgrid import PlaceUnavailable

        board = items[0].board
        self._set(self.states[board.name], phase="reserve")
        try:
            with self.hold(board, items[0].job.selector.tags):
                self._board_items(items)
        except PlaceUnavailable as exc:
            for it in items:
                self._final(it, "skipped", str(exc))
        except Exception as exc:  # the coordinator failed us: these items did not run
            for it in items:
                self._final(it, "unreachable", f"labgrid: {one_line(exc) or type(exc).__name__}")

    def _board_items(self, items: list[Item]) -> None:
        board = items[0].board
        try:
            client = board.client(timeout=self.call_timeout_s)
        except EdgebenchError as exc:
            for it in items:
                self._final(it, "unreachable", one_line(exc))
            return
        with client:
            dropped, down = None, "unreachable"  # down: how items are marked once the board is gone
            info = self.infos.get(board.name)
            try:
                info = info or client.info()
            except EdgebenchError as exc:
                dropped = one_line(exc)
            if dropped is None and board.profile and info and info.get("profile") != board.profile:
                why = f"expected profile {board.profile}, the agent reports {info.get('profile')}"
                for it in items:
                    self._final(it, "skipped", why)
                return
            pushed: set[str] = set()
            for it in items:
                if self.stop.is_set():
                    return
                if dropped is not None:
                    self._final(it, down, dropped)
                    continue
                try:
                    self._item(client, it, pushed)
                except EdgebenchError as exc:
                    reason = one_line(exc)
                    if self._alive(client):
                        self._final(it, "failed", reason)
                    else:
                        dropped, down = f"board dropped: {reason}", "dropped"
                        self._final(it, "dropped", dropped)
                except Exception as exc:  # a bug or a transport surprise: this item, not the plan
                    self._final(it, "failed", one_line(f"{type(exc).__name__}: {exc}"))

    def _alive(self, client: Any) -> bool:
        try:
            client.stat("0" * 64)
            return True
        except EdgebenchError:
            return False

    def _item(self, client: Any, it: Item, pushed: set[str]) -> None:
        st = self._state(it, phase="check")
        if it.run_id and self._collect(client, it):
            return  # resume: the run an earlier attempt started finished on the board
        self.store.update(self.plan_id, it.key, status="running", started=time.time(), reason=None)
        chk = client.check(it.model)
        if not chk["runnable"]:
            self._final(it, "skipped", f"cannot run here: {chk['message']}")
            return
        self._set(st, phase="push")
        args = options.parse(it.job.kind, it.job.options, it.model, self.base)
        sent = 0
        sha, n = self._push(client, it.model, pushed)
        sent += n
        side: dict[str, str | None] = {"inputs": None, "reference": None}
        for opt in side:
            if getattr(args, opt, None):
                side[opt], n = self._push(client, getattr(args, opt), pushed)
                sent += n
        spec = _spec(args, it.job.kind, sha, Path(it.model).name, side["inputs"], side["reference"])
        run_id = client.start_run(spec)
        it.run_id = run_id
        self.store.update(self.plan_id, it.key, run_id=run_id, add_bytes=sent, attempt=True)
        self._set(st, phase="start", status=run_id)
        self._follow(client, it)

    def _push(self, client: Any, path: str, pushed: set[str]) -> tuple[str, int]:
        """Push once per board: (sha, bytes sent); 0 when the board has it (the
        same bytes under another name still push its header: its requirements)."""
        from controller.client import sha256_file

        p = Path(path)
        if not p.is_file():
            raise BadInput(f"file not found: {path}")
        sha = sha256_file(p)
        if str(p) in pushed:
            return sha, 0
        st = client.stat(sha)
        sent = 0 if st.present else p.stat().st_size - int(st.committed_offset or 0)
        client.push(p, sha=sha)
        pushed.add(str(p))
        return sha, sent

    def _follow(self, client: Any, it: Item) -> None:
        from controller.commands.common import final_result

        st = self.states[it.board.name]
        for ev in client.watch(it.run_id, reconnect_s=self.drop_after_s):
            kind, p = ev["kind"], ev.get("payload") or {}
            if kind == "phase":
                self._set(st, phase=str(p.get("phase")))
            elif kind == "progress":
                tgt = float(p.get("target_s") or 0) or None
                ips = p.get("throughput_ips")
                self._set(
                    st,
                    progress=min(1.0, float(p.get("elapsed_s") or 0) / tgt) if tgt else None,
                    figure=f"{ips:.1f} inf/s" if isinstance(ips, (int, float)) else st.figure,
                )
            elif kind == "result":
                break
        self._finish(it, final_result(client, it.run_id), client.addr)

    def _collect(self, client: Any, it: Item) -> bool:
        """Resume: an earlier attempt's run that ended (or still runs) on the board
        is collected instead of run again. False: run the item afresh."""
        try:
            rec = client.get_run(it.run_id)
        except EdgebenchError:
            return False  # the board forgot it (a new state dir): run again
        if rec["status"] in ("interrupted", "cancelled"):
            return False
        if rec["status"] in FINAL:
            if not rec["result"]:
                return False
            self._finish(it, rec["result"], client.addr)
            return True
        self._follow(client, it)
        return True

    def _finish(self, it: Item, result: dict, agent: str) -> None:
        if result.get("status") == "failed" and result.get("error_code") == "bad_input":
            # bad input is never stored; on this board the item cannot run as planned
            self._final(it, "failed", f"bad input: {result.get('error')}")
            return
        gates = fleet_gates.evaluate(result, it.job.gates)
        if result.get("status") != "completed":
            status, reason = "failed", str(result.get("error") or result.get("status"))
        elif any(not g["passed"] for g in gates):
            status, reason = "gate_failed", "; ".join(g["message"] for g in gates if not g["passed"])
        else:
            status, reason = "passed", None
        self.store.store_result(
            self.plan_id, it.key, result, agent, status=status, reason=reason, gates=gates, ended=time.time()
        )
        ips = result.get("throughput_ips")
        fig = f"{ips:.1f} inf/s" if isinstance(ips, (int, float)) else ""
        self._done(it, status, reason, fig)

    def _final(self, it: Item, status: str, reason: str | None) -> None:
        """An item ends without a stored result (skipped, dropped, failed)."""
        self.store.update(self.plan_id, it.key, status=status, reason=reason, ended=time.time())
        self._done(it, status, reason, "")

    def _done(self, it: Item, status: str, reason: str | None, fig: str) -> None:
        st = self.states.get(it.board.name) or BoardState(it.board.name)
        line = f"{it.job.name} {Path(it.model_key).name}: {status}" + (f" ({reason})" if reason else "")
        with self.lock:
            st.done += 1
            st.history.append(line)
        self._set(st, phase=status, figure=fig or st.figure, progress=None)

    def _state(self, it: Item, **kw: Any) -> BoardState:
        st = self.states.setdefault(it.board.name, BoardState(it.board.name))
        self._set(st, job=it.job.name, model=Path(it.model_key).name, figure="", progress=None, **kw)
        return st

    def _set(self, st: BoardState, **kw: Any) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(st, k, v)
        self.on_event(st.board, dict(st.__dict__))


def _spec(args: Any, kind: str, sha: str, name: str, inputs: str | None, reference: str | None) -> Any:
    """The RunSpec, built exactly as the command of that kind builds it."""
    from controller.runopts import spec_from_args

    if kind == "soak":
        from controller.commands.soak import _soak_spec

        return _soak_spec(args, sha, name, inputs)
    spec = spec_from_args(args, kind, sha, name, inputs_sha=inputs, reference_sha=reference)
    if kind == "validate":
        from controller.commands.validate import validation_spec

        spec.validation = validation_spec(args, Path(args.model))
        spec.validate()
    return spec


def finished(status: str | None) -> bool:
    return status in FINISHED


def model_key(model: str, base: Path) -> str:
    """How an item names its model: relative to the plan file when under it."""
    try:
        return os.path.relpath(model, base) if Path(model).is_relative_to(base) else Path(model).name
    except ValueError:
        return Path(model).name
