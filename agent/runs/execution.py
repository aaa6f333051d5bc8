"""One run, from start to its committed result: the instruments around it
(telemetry sampler, current meter), the worker process, the pump that
journals the worker's messages (fsynced, before any watcher sees them), and
``finish``, the run's one commit point.

The worker is ``agent.runs.worker.entry`` started with the ``spawn`` context:
never fork a process holding gRPC threads. A crash in a runtime or vendor
delegate ends the worker, never the agent.

The instruments (sampler, meter capture) and the analyses are imported when
a run starts, not with this module: an idle agent carries no numpy.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

from agent import messages, rundir
from agent.clock import now_ns
from agent.errors import EdgebenchError, one_line
from agent.profiles import Profile
from agent.rootfs import RootFS
from agent.runs import worker
from agent.runs.conditions import Conditions
from agent.runs.instruments import Instruments
from agent.runs.journal import Journal
from agent.runs.limits import CANCEL_GRACE_S, DEFAULT_MAX_RUN_S
from agent.runs.registry import RunDir, write_error
from agent.runs.result import Outcome, assemble, header, partial_result
from agent.spec import MeterSpec, RunSpec

log = logging.getLogger("edgebench.agent.runs")

PUMP_TICK_S = 0.2  # how often the pump looks at the run's deadline and a pending SIGKILL


class ActiveRun:
    """A run the agent holds in memory while it is queued or running."""

    def __init__(
        self,
        rd: RunDir,
        spec: RunSpec,
        journal: Journal,
        accelerator: dict | None = None,
        on_end: Callable[[ActiveRun], None] = lambda run: None,
        limit_s: float = DEFAULT_MAX_RUN_S,
        grace_s: float = CANCEL_GRACE_S,
        on_write_error: Callable[[str], None] = lambda why: None,
    ) -> None:
        self.rd = rd
        self.spec = spec
        self.journal = journal
        self.accelerator = accelerator  # the profile accelerator --accelerator resolved to
        self.proc: multiprocessing.process.BaseProcess | None = None
        self.cancelled = False
        self.started = False
        # taken: by the dispatcher that runs it, or by a cancel that ends it
        # still queued; whoever sets it first (under ``lock``) ends the run
        self.claimed = False
        self.iterations = 0
        self.throughput_ips = 0.0
        self.unmeasured_inferences = 0  # cold + warm-up: in inferences_total, not in throughput
        self.t0_ns = 0
        # the manager's bookkeeping, done before the journal closes: a caller
        # woken by the end of the run finds the run's counts already retired
        self.on_end = on_end
        self.on_write_error = on_write_error  # the manager's health: the state dir is unwritable
        self.limit_s = limit_s  # the hard wall-clock limit from the worker's start
        self.grace_s = grace_s
        self.kill_at: float | None = None  # monotonic: SIGKILL if the worker still lives then
        self.killed = False  # SIGKILL was needed
        self.timed_out = False
        self.lock = threading.Lock()

    def terminate(self) -> None:
        """Ask the worker to stop: SIGTERM now, SIGKILL after the grace period
        (the execution's pump escalates: a worker inside a native call never
        runs a Python handler, and may have SIGTERM blocked)."""
        with self.lock:
            proc = self.proc
            if self.kill_at is None:
                self.kill_at = time.monotonic() + self.grace_s
        if proc is not None and proc.is_alive():
            proc.terminate()


def finish(run: ActiveRun, status: str, error: str | None, code: str | None, doc: dict | None = None) -> None:
    """Commit a run's end, and never raise: result.json is the commit point
    (atomic, final status), then state.json, then the journal's ``result``
    event, so a reader that sees the final status finds the result. Without
    ``doc`` (a run that never started its worker) the result is built from the
    journal.

    A write that fails (a full disk) fails this run with one line ("no space
    left on device writing result.json"); what cannot be written at all is held
    in memory (``Registry.hold``) and written once space returns. Either way
    the run ends here: it leaves the manager and its watchers are released."""
    rd = run.rd
    ended = time.time()
    committed = True
    try:
        try:
            if doc is None:
                doc = partial_result(rd, status, error, code)
            doc["ended_unix"] = ended
            rd.write_result(doc)  # the commit point
        except Exception as exc:
            why = (
                write_error(exc) if isinstance(exc, OSError) else f"agent error: {type(exc).__name__}: {exc}"
            )
            log.error("run %s: cannot commit its result: %s", rd.run_id, why)
            if isinstance(exc, OSError):
                run.on_write_error(why)
            if not (status == "failed" and error):  # a run already failed keeps its first reason
                error, code = one_line(why), "run_failed"
            status = "failed"
            doc = header(rd.run_id, rd.spec(), rd.state(), status, error, code)
            doc["ended_unix"] = ended
            try:
                rd.write_result(doc)
            except OSError:
                committed = False
                _hold(run, status, error, code, ended, doc)
        if committed:
            _commit_state(run, status, error, code, ended, doc)
        try:
            run.journal.append("result", {"status": status, "error": error, "error_code": code})
        except Exception as exc:  # the result is committed; watchers end without the event
            log.warning("run %s: cannot journal its result: %s", rd.run_id, write_error(exc))
        log.info("run %s %s%s", rd.run_id, status, f": {error}" if error else "")
    finally:
        try:
            run.on_end(run)
        except Exception:
            log.exception("run %s: retiring it failed", rd.run_id)
        run.throughput_ips = 0.0
        run.journal.close()


def _commit_state(
    run: ActiveRun, status: str, error: str | None, code: str | None, ended: float, doc: dict
) -> None:
    """state.json after the commit point; held in memory when it cannot be
    written (recovery would take the status from result.json anyway)."""
    try:
        run.rd.update_state(status=status, ended_unix=ended, error=error, error_code=code, pid=None)
    except OSError as exc:
        log.error("run %s: cannot write its state: %s", run.rd.run_id, write_error(exc))
        run.on_write_error(write_error(exc))
        _hold(run, status, error, code, ended, doc)


def _hold(run: ActiveRun, status: str, error: str | None, code: str | None, ended: float, doc: dict) -> None:
    """Keep the run's final state and result in memory: readers see them, and
    the manager writes them once the disk takes them."""
    st = {
        **run.rd.state(),
        "status": status,
        "ended_unix": ended,
        "error": error,
        "error_code": code,
        "pid": None,
    }
    run.rd.hold(st, doc)


class Execution:
    """Runs one ``ActiveRun`` to its committed result (``execute``)."""

    def __init__(
        self,
        run: ActiveRun,
        *,
        ctx: multiprocessing.context.BaseContext,
        task: str,
        root: RootFS,
        profile: Profile | None,
        meter: MeterSpec | None,
        agent_info: Callable[[], dict],
        stopping: Callable[[], bool],
    ) -> None:
        self.run = run
        self.ctx = ctx
        self.task = task
        self.root = root
        self.profile = profile
        self.meter = meter
        self.agent_info = agent_info
        self.stopping = stopping
        self.warnings: list[str] = []
        self.instruments = Instruments(run, root, profile, meter, self.warnings)
        self.windows: list[dict] = []
        self.conditions = Conditions(root, profile, run.rd.path, run.spec.pin_clocks)

    # -- the run ----------------------------------------------------------------
    def execute(self) -> None:
        run = self.run
        run.t0_ns = now_ns()
        run.started = True
        run.rd.update_state(status="running", started_unix=time.time(), t0_ns=run.t0_ns, limit_s=run.limit_s)
        log.info("run %s started: %s %s", run.rd.run_id, run.spec.kind, run.spec.model_name)
        run.journal.append("state", {"status": "running"}, t_ns=run.t0_ns)
        self.conditions.begin()  # pinned (journalled first) and probed before the instruments start
        self.instruments.start_sampler()
        try:
            self.instruments.start_capture()
        except EdgebenchError as exc:  # a meter that cannot be opened fails the run
            self.instruments.stop()
            self.conditions.end()
            finish(run, "failed", one_line(exc), exc.code)
            return
        try:
            self._run_worker()
        except BaseException:
            # an agent-side bug: leave no worker, sampler or meter behind
            with run.lock:
                proc = run.proc
            if proc is not None and proc.is_alive():
                proc.kill()
            self.instruments.stop()
            self.conditions.end()  # the clocks go back even after an agent-side bug
            raise

    def _run_worker(self) -> None:
        run = self.run
        self.instruments.start_cold()
        parent, child = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(
            target=worker.entry,
            args=(run.spec.to_dict(), str(run.rd.path), child, self.task),
            name=f"edgebench-worker-{run.rd.run_id}",
        )
        with run.lock:
            if not run.cancelled:
                proc.start()
                run.proc = proc
        child.close()
        if run.proc is None:
            parent.close()
            self.instruments.stop()
            self.conditions.end()
            finish(run, "cancelled", "cancelled", None)
            return
        deadline = time.monotonic() + run.limit_s
        run.rd.update_state(pid=proc.pid)
        part, error = self._pump(parent, proc, deadline)
        parent.close()
        self._reap(proc)
        telemetry, capture = self.instruments.stop()
        environment, pinned, env_warnings = self.conditions.end(proc.pid)
        outcome = Outcome(
            *self._status(part, error, proc.exitcode),
            part=part,
            windows=self.windows,
            iterations=run.iterations,
            throughput_ips=run.throughput_ips,
            telemetry=telemetry,
            samples=self.instruments.samples(),
            capture=capture,
            cold_start=self.instruments.cold_start,
            warnings=env_warnings + self.warnings,
            environment=environment,
            pinned_clocks=pinned,
        )
        doc = assemble(
            run.rd,
            run.spec,
            outcome,
            t0_ns=run.t0_ns,
            agent=self._agent(),
            accelerator=run.accelerator,
            profile=self.profile,
        )
        finish(run, outcome.status, outcome.error, outcome.code, doc)

    def _pump(
        self, conn: Any, proc: multiprocessing.process.BaseProcess, deadline: float
    ) -> tuple[dict | None, tuple[str, str] | None]:
        """Journal the worker's messages until it closes the pipe; returns its
        result part and its error (code, message), either may be None. Between
        messages it enforces the run's wall-clock limit and the SIGKILL that
        follows a SIGTERM the worker did not act on."""
        run = self.run
        part: dict | None = None
        error: tuple[str, str] | None = None
        while True:
            self._enforce(proc, deadline)
            try:
                if not conn.poll(PUMP_TICK_S):
                    if proc.exitcode is not None and not conn.poll(0):
                        return part, error  # dead, and a grandchild holds the pipe open
                    continue
                msg = conn.recv()
            except (EOFError, OSError):
                return part, error
            except Exception as exc:  # an unpicklable message: note it, keep reading
                self.warnings.append(f"bad worker message: {exc}")
                continue
            if not isinstance(msg, dict):
                continue
            m = messages.parse(msg)
            payload = {k: v for k, v in msg.items() if k != "type"}
            if isinstance(m, messages.Result):
                part = m.data or {}
                # the exact count (progress messages lag by up to 0.5 s)
                run.iterations = int(part.get("iterations") or run.iterations)
                # the cold first inference and the warm-up count as inferences too
                run.unmeasured_inferences = int(part.get("warmup_iterations") or 0) + (
                    1 if part.get("first_inference_ms") is not None else 0
                )
            elif isinstance(m, messages.Error):
                error = (str(m.code or "run_failed"), one_line(m.message or "run failed"))
            elif isinstance(m, messages.Window):
                self.windows.append(self.instruments.window(m))
            elif isinstance(m, messages.Progress):
                run.iterations = int(m.iterations or 0)
                run.throughput_ips = float(m.throughput_ips or 0.0)
                run.journal.append("progress", payload, t_ns=m.t_ns)
            elif isinstance(m, messages.Phase):
                self.conditions.on_phase(m.phase, proc.pid)
                run.journal.append("phase", payload, t_ns=m.t_ns)
            else:  # a schedule, or a type this agent does not know: journaled as a log event
                run.journal.append("log", payload, t_ns=msg.get("t_ns"))

    def _enforce(self, proc: multiprocessing.process.BaseProcess, deadline: float) -> None:
        """The wall-clock limit (SIGTERM), then SIGKILL after the grace period."""
        run = self.run
        now = time.monotonic()
        if not run.timed_out and now >= deadline and proc.exitcode is None:
            run.timed_out = True
            log.warning("run %s timed out after %g s: stopping its worker", run.rd.run_id, run.limit_s)
            run.terminate()
        kill_at = run.kill_at
        if kill_at is not None and now >= kill_at and proc.exitcode is None:
            log.warning(
                "run %s: worker %s ignored SIGTERM for %g s: SIGKILL", run.rd.run_id, proc.pid, run.grace_s
            )
            run.killed = True
            proc.kill()
            run.kill_at = now + run.grace_s  # and again, should SIGKILL itself be lost

    def _reap(self, proc: multiprocessing.process.BaseProcess) -> None:
        """Join the worker, bounded: SIGKILL if it outlives its pipe."""
        proc.join(self.run.grace_s)
        if proc.exitcode is None:
            self.run.killed = True
            proc.kill()
            proc.join(self.run.grace_s)
        if proc.exitcode is None:
            log.error(
                "run %s: worker %s survives SIGKILL (stuck in the kernel?)", self.run.rd.run_id, proc.pid
            )

    def _status(
        self, part: dict | None, error: tuple[str, str] | None, exitcode: int | None
    ) -> tuple[str, str | None, str | None]:
        run = self.run
        killed = f"; killed after the {run.grace_s:g} s grace period" if run.killed else ""
        if run.cancelled:
            return "cancelled", "cancelled" + killed.replace("grace", "cancel grace"), None
        if run.timed_out and part is None:
            return "failed", f"timed out after {run.limit_s:g} s{killed}", "timeout"
        if self.stopping() and part is None and error is None:
            return "interrupted", "interrupted: the agent stopped during this run", None
        if part is not None:
            return "completed", None, None
        if error is not None:
            return "failed", error[1], error[0]
        return "failed", worker.died_message(exitcode, self.run.rd.path / rundir.STDERR), "run_failed"

    def _agent(self) -> dict:
        try:
            return self.agent_info()
        except Exception as exc:
            return {"error": one_line(exc)}
