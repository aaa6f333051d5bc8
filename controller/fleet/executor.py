"""Runs a plan's work items: a thread per board, one run per board at a time.

Per item: the portability guard (CheckArtifact, no bytes move), then the run
through the controller's session layer (controller/session.py): push once
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

from agent.errors import EdgebenchError, one_line
from agent.runs.registry import FINAL
from controller import specs
from controller.fleet import gates as fleet_gates
from controller.fleet import options
from controller.fleet.inventory import Board
from controller.fleet.plan import Job
from controller.fleet.store import FINISHED, FleetStore
from controller.session import Session

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
            session = Session(client)
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
            for it in items:
                if self.stop.is_set():
                    return
                if dropped is not None:
                    self._final(it, down, dropped)
                    continue
                try:
                    self._item(session, it)
                except EdgebenchError as exc:
                    reason = one_line(exc)
                    if session.alive():
                        self._final(it, "failed", reason)
                    else:
                        dropped, down = f"board dropped: {reason}", "dropped"
                        self._final(it, "dropped", dropped)
                except Exception as exc:  # a bug or a transport surprise: this item, not the plan
                    self._final(it, "failed", one_line(f"{type(exc).__name__}: {exc}"))

    def _item(self, session: Session, it: Item) -> None:
        st = self._state(it, phase="check")
        # an optimize item is four runs: a resume runs it afresh, never collects one of them
        if it.run_id and it.job.kind != "optimize" and self._collect(session, it):
            return  # resume: the run an earlier attempt started finished on the board
        self.store.update(self.plan_id, it.key, status="running", started=time.time(), reason=None)
        chk = session.client.check(it.model)
        if not chk["runnable"]:
            self._final(it, "skipped", f"cannot run here: {chk['message']}")
            return
        self._set(st, phase="push")
        args = options.parse(it.job.kind, it.job.options, it.model, self.base)
        before = session.bytes_sent
        if it.job.kind == "optimize":
            self._set(st, phase="quantize")
            self._optimize(session, it, args, before)
            return
        if it.job.kind == "pipeline":  # "models" are PIPELINE.yaml files: their stages name the models
            from controller.pipeline import load as pipeline_load
            from controller.pipeline import run as pipeline_run

            loaded = pipeline_load.load(it.model, keep_outputs=args.keep_outputs)
            spec = pipeline_run.prepare(session, args, loaded)
        else:
            sha = session.push(it.model, "model")
            side = {o: session.push_optional(getattr(args, o, None), o) for o in ("inputs", "reference")}
            spec = specs.build(it.job.kind, args, sha, Path(it.model).name, side["inputs"], side["reference"])
        run_id = session.start(spec)
        it.run_id = run_id
        self.store.update(
            self.plan_id, it.key, run_id=run_id, add_bytes=session.bytes_sent - before, attempt=True
        )
        self._set(st, phase="start", status=run_id)
        self._follow(session, it)

    def _follow(self, session: Session, it: Item) -> None:
        st = self.states[it.board.name]
        assert it.run_id is not None

        def shown(ev: dict) -> None:
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

        result = session.follow(it.run_id, shown, reconnect_s=self.drop_after_s)
        self._finish(it, result, session.addr)

    def _optimize(self, session: Session, it: Item, args: Any, before: int) -> None:
        """Quantize here, then the four runs on this board (controller/optimize.py).
        The item's row is the optimized model's bench, carrying the optimized
        validate's gates and the report's figures; the other three runs are
        stored beside it under the same plan, job and board."""
        from controller.optimize import optimize, write_reports

        args.quiet = True  # the fleet's live view shows the phases, not optimize's lines
        out_dir = Path(args.out_dir) / it.job.name / it.board.name / Path(it.model).stem
        # each run is stored below, under the plan, job and board: not in optimize's DB
        rep, runs = optimize(args, out_dir, session=session, keep=lambda r, agent: None)
        if rep.get("target_missed"):
            self._final(it, "gate_failed", f"the target {rep['target_missed']} cannot be met")
            return
        write_reports(rep, out_dir)  # report.html and optimize.json beside the models, as the command does
        main = dict(runs["bench_optimized"])
        main["gates"] = [*(main.get("gates") or []), *(runs["validate_optimized"].get("gates") or [])]
        c = rep.get("compare") or {}
        main["optimize"] = {
            "pipeline": rep["pipeline"],
            "speedup": (c.get("speedup") or {}).get("ratio"),
            "accuracy": rep["accuracy"],
            "failed": rep["failed"],
            "report_dir": str(out_dir),
        }
        it.run_id = main["run_id"]
        for name, r in runs.items():
            if name != "bench_optimized":
                self.store.store_side_run(self.plan_id, it.key, r, session.addr)
        self.store.update(
            self.plan_id, it.key, run_id=it.run_id, add_bytes=session.bytes_sent - before, attempt=True
        )
        bad = [k for k, r in runs.items() if r.get("status") != "completed"]
        failure = f"{bad[0]}: {runs[bad[0]].get('error') or runs[bad[0]]['status']}" if bad else None
        self._finish(it, main, session.addr, failure)

    def _collect(self, session: Session, it: Item) -> bool:
        """Resume: an earlier attempt's run that ended (or still runs) on the board
        is collected instead of run again. False: run the item afresh."""
        assert it.run_id is not None
        try:
            rec = session.record(it.run_id)
        except EdgebenchError:
            return False  # the board forgot it (a new state dir): run again
        if rec["status"] in ("interrupted", "cancelled"):
            return False
        if rec["status"] in FINAL:
            if not rec["result"]:
                return False
            self._finish(it, rec["result"], session.addr)
            return True
        self._follow(session, it)
        return True

    def _finish(self, it: Item, result: dict, agent: str, failure: str | None = None) -> None:
        """Evaluate the gates and store; ``failure``: another run of the item
        failed (optimize), so it fails however this result went."""
        if result.get("status") == "failed" and result.get("error_code") == "bad_input":
            # bad input is never stored; on this board the item cannot run as planned
            self._final(it, "failed", f"bad input: {result.get('error')}")
            return
        gates = fleet_gates.evaluate(result, it.job.gates)
        if failure is not None:
            status, reason = "failed", failure
        elif result.get("status") != "completed":
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
        # this item's own figure, or none: a dropped or skipped item must not show
        # the figure the previous item left on the board's row
        self._set(st, job=it.job.name, model=Path(it.model_key).name, phase=status, figure=fig, progress=None)

    def _state(self, it: Item, **kw: Any) -> BoardState:
        st = self.states.setdefault(it.board.name, BoardState(it.board.name))
        self._set(st, job=it.job.name, model=Path(it.model_key).name, figure="", progress=None, **kw)
        return st

    def _set(self, st: BoardState, **kw: Any) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(st, k, v)
        self.on_event(st.board, dict(st.__dict__))


def finished(status: str | None) -> bool:
    return status in FINISHED


def model_key(model: str, base: Path) -> str:
    """How an item names its model: relative to the plan file when under it."""
    try:
        return os.path.relpath(model, base) if Path(model).is_relative_to(base) else Path(model).name
    except ValueError:
        return Path(model).name
