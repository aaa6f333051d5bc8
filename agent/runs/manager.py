"""The agent's runs: a queue, the public API the servicer and /metrics call
(start, cancel, wait, watch, stats, close), and the dispatcher threads that
take runs off the queue and hand each to an ``Execution``.

Runs execute one at a time by default: they contend for the same board.

Nothing here may wedge the agent (issue 13): the queue is bounded
(``max_queued``) and queued runs hold no file; a run needs ``min_free`` bytes
free to start; every run has a wall-clock limit and a cancel escalates to
SIGKILL (agent/runs/limits.py); an exception in a dispatcher fails that run
only; a monitor thread writes back what a full disk held and tells the health
service (``watch_health``) whether the agent can work.

Over 400 lines because the queue, its dispatchers and the public API share
one lock and one set of invariants; one run's execution is agent/runs/execution.py.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent import portability, profiles
from agent.errors import BadInput, EdgebenchError, ResourceExhausted, one_line
from agent.names import RUNTIME_OF_FORMAT, model_format
from agent.profiles import Profile
from agent.rootfs import RootFS
from agent.runs import limits
from agent.runs.execution import ActiveRun, Execution, finish
from agent.runs.journal import Journal, iter_events
from agent.runs.registry import Registry, write_error
from agent.runs.result import partial_result
from agent.runs.worker import DEFAULT_TASK
from agent.spec import MeterSpec, RunSpec
from agent.store.artifacts import ArtifactStore

log = logging.getLogger("edgebench.agent.runs")

MONITOR_PERIOD_S = 1.0
PROBLEM_WAIT_S = 30.0  # a queued run waits this long for a full disk to clear before it fails


class RunManager:
    def __init__(
        self,
        state_dir: str | Path,
        store: ArtifactStore,
        root: RootFS | None = None,
        profile: str = "auto",
        info: Callable[[], dict] | None = None,
        task: str = DEFAULT_TASK,
        concurrency: int = 1,
        default_meter: MeterSpec | None = None,
        min_free: int = limits.DEFAULT_MIN_FREE,
        max_queued: int = limits.DEFAULT_MAX_QUEUED,
        max_run_s: float = limits.DEFAULT_MAX_RUN_S,
        cancel_grace_s: float = limits.CANCEL_GRACE_S,
        allow_code: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.store = store
        # serve --allow-code: pipelines may run pushed Python (user stages); off by default
        self.allow_code = bool(allow_code)
        self.registry = Registry(self.state_dir)
        self.root = root or RootFS("/")
        self.profile_name = profile
        self._info = info or (lambda: {})
        self.task = task
        # the agent's own meter (serve --meter) measures runs that name none
        self.default_meter = default_meter
        self.min_free = int(min_free)
        self.max_queued = int(max_queued)
        self.max_run_s = float(max_run_s)
        self.cancel_grace_s = float(cancel_grace_s)
        if self.max_queued < 1 or not self.max_run_s > 0 or self.min_free < 0 or self.cancel_grace_s < 0:
            raise BadInput("--max-queued and --max-run-s must be positive, --min-free not negative")
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()  # the queue bound: count and enqueue as one step
        self._runs: dict[str, ActiveRun] = {}
        self._pins: dict[str, int] = {}  # run id -> readers that keep it from deletion
        n_threads = max(1, concurrency)
        # start() admits at most max_queued live runs; the queue itself is not
        # bounded because a run cancelled while queued ends at once but stays
        # in it, dead, until a dispatcher skips it (a bound would count those)
        self._queue: queue.Queue[ActiveRun | None] = queue.Queue()
        self._inferences_done = 0
        self.run_ended = threading.Event()  # set as each run retires: retention follows it
        self._stopping = False
        self._stop = threading.Event()
        self._profile_obj: Profile | None = None
        self._profile_loaded = False
        self._write_problem: str | None = None  # the last failed write, until one succeeds
        self._health_fns: list[Callable[[str | None], None]] = []
        self._health_last: object = ()  # never a problem() value: the first check reports
        self.recovered = self.registry.recover(partial_result)
        self._restore_clocks()  # a run's --pin-clocks outlived by an agent that died
        self._threads = [
            threading.Thread(target=self._dispatch, name=f"edgebench-run-{i}", daemon=True)
            for i in range(n_threads)
        ]
        for t in self._threads:
            t.start()
        self._monitor = threading.Thread(target=self._watch, name="edgebench-run-monitor", daemon=True)
        self._monitor.start()

    def _restore_clocks(self) -> None:
        from agent.environment.pin import restore

        back = restore(self.root, self.state_dir)
        if back is not None:
            log.warning("restored the clocks run %s pinned: %s", back["run_id"], back["restored"])

    # -- public API (the servicer and metrics call these) -------------------
    def start(self, spec: RunSpec) -> str:
        if self._stopping:
            raise EdgebenchError("agent is shutting down")
        for label, sha in (
            ("model", spec.model_sha256),
            ("inputs", spec.inputs_sha256),
            ("reference", spec.reference_sha256),
        ):
            if sha is not None and self.store.path(sha) is None:
                raise BadInput(f"{label} artifact {sha[:12]}... is not in the agent's store; push it first")
        if spec.pipeline is not None:
            self._check_pipeline(spec.pipeline)
        if spec.model_sha256 is not None:
            # an engine built for another SM / TensorRT / L4T fails late and
            # cryptically: refuse it before a run exists
            portability.guard(self.store, spec.model_sha256, self._info)
        if spec.env:
            raise BadInput("run spec field env comes from the agent's hardware profile (--accelerator)")
        accelerator = None
        if spec.accelerator:
            spec, accelerator = self._resolve_accelerator(spec)
        if spec.warmup_s + spec.duration_s > self.max_run_s:
            raise BadInput(
                f"warm-up + duration ({spec.warmup_s + spec.duration_s:g} s) exceed the agent's "
                f"--max-run-s {self.max_run_s:g} s"
            )
        samples = None
        if spec.kind == "validate":
            samples = limits.npz_samples(self.store.path(spec.reference_sha256 or spec.inputs_sha256 or ""))
        limit_s = limits.run_limit_s(spec, samples, self.max_run_s)
        with self._start_lock:
            problem = self.problem()
            if problem is not None:
                raise ResourceExhausted(problem)
            with self._lock:
                queued = sum(1 for r in self._runs.values() if not r.started)
            if queued >= self.max_queued:
                raise ResourceExhausted(
                    f"the run queue is full ({queued} runs queued, --max-queued {self.max_queued}); "
                    "wait for runs to finish or cancel some"
                )
            try:
                rd = self.registry.create(spec.to_dict())
            except OSError as exc:
                self._note_write_error(write_error(exc))
                raise ResourceExhausted(f"cannot create the run: {write_error(exc)}") from None
            run = ActiveRun(
                rd,
                spec,
                Journal(rd.journal_path),
                accelerator,
                on_end=self._retire,
                limit_s=limit_s,
                grace_s=self.cancel_grace_s,
                on_write_error=self._note_write_error,
            )
            try:
                run.journal.append("state", {"status": "queued"})
            except OSError as exc:
                run.journal.close()
                self.registry.remove(rd)
                self._note_write_error(write_error(exc))
                raise ResourceExhausted(f"cannot queue the run: {write_error(exc)}") from None
            run.journal.release()  # a queued run holds no file descriptor
            with self._lock:
                self._runs[rd.run_id] = run
            self._queue.put(run)
        return rd.run_id

    def _check_pipeline(self, pipeline: dict) -> None:
        """Every artifact a pipeline's stages name is stored; user code only on --allow-code."""
        from agent.pipeline.spec import artifacts, has_code

        for label, sha in artifacts(pipeline):
            if self.store.path(sha) is None:
                raise BadInput(f"{label}: artifact {sha[:12]}... is not in the agent's store; push it first")
        code = has_code(pipeline)
        if code and not self.allow_code:
            raise BadInput(
                f"pipeline stage {code[0]} runs user code, and this agent was not started with --allow-code "
                "(off by default: it executes pushed Python)"
            )

    def _resolve_accelerator(self, spec: RunSpec) -> tuple[RunSpec, dict]:
        """``--accelerator NAME`` -> the spec with the profile's runtime,
        providers/delegate, options and env; judged here so that a board
        without that accelerator is a bad input before any run exists."""
        profile = self.profile()
        if profile is None:
            raise BadInput(f"--accelerator {spec.accelerator} needs a hardware profile; none is loaded")
        path = self.store.path(spec.model_sha256)
        fmt = model_format(Path(path), spec.model_name)
        runtime = spec.runtime or RUNTIME_OF_FORMAT[fmt]
        acc = profile.accelerator(spec.accelerator, runtime)
        resolved = spec.with_accelerator(acc)
        summary = {k: acc[k] for k in ("name", "entry", "profile", "runtime", "providers", "delegate")}
        return resolved, summary

    def cancel(self, run_id: str) -> bool:
        """True if the run was queued or running (now cancelled or cancelling).
        A queued run ends here and now: it does not wait for the run ahead of
        it (the dispatcher that later takes it off the queue skips it)."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            return False
        with run.lock:
            run.cancelled = True
            queued, run.claimed = not run.claimed, True
        if queued:
            finish(run, "cancelled", "cancelled before it started", None)
            return True
        run.terminate()  # SIGTERM, then SIGKILL after the grace period
        return True

    def wait(self, run_id: str, timeout: float | None = None) -> str | None:
        """Block until a run is final; its status (None on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None:
            while not run.journal.closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                run.journal.wait_after(run.journal.last_seq, min(left or 0.5, 0.5))
        rd = self.registry.get(run_id)
        return rd.state().get("status") if rd else None

    def watch(
        self, run_id: str, after_seq: int = 0, active: Callable[[], bool] = lambda: True
    ) -> Iterator[dict]:
        """Every event with seq > after_seq exactly once, then live events until
        the run ends (or ``active()`` turns false: the client went away)."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            rd = self.registry.get(run_id)
            if rd is None:
                raise KeyError(run_id)
            yield from iter_events(rd.journal_path, after_seq)
            return
        seq = after_seq
        while active():
            events = run.journal.wait_after(seq, 0.5)
            for ev in events:
                seq = ev["seq"]
                yield ev
            if run.journal.closed and seq >= run.journal.last_seq:
                return

    def last_seq(self, run_id: str) -> int:
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None:
            return run.journal.last_seq
        rd = self.registry.get(run_id)
        return rd.last_seq() if rd else 0

    def stats(self) -> dict[str, float]:
        # one snapshot: _retire moves a run's count into _inferences_done and
        # drops it from _runs in one step under this lock
        with self._lock:
            runs = list(self._runs.values())
            done = self._inferences_done
        running = [r for r in runs if r.started]
        return {
            "runs_in_flight": len(runs),
            "inferences_total": done + sum(r.iterations for r in running),
            "current_throughput_ips": sum(r.throughput_ips for r in running),
        }

    def alive(self) -> bool:
        """Every dispatcher thread still running: the service watchdog pings only then."""
        return all(t.is_alive() for t in self._threads)

    @contextmanager
    def pinned(self, run_id: str) -> Iterator[None]:
        """Keep a run's directory from deletion (retention) while a caller
        that may end it still reads it: a cancel answers with the record of
        the run it just ended. Retention looks again once it is unpinned."""
        with self._lock:
            self._pins[run_id] = self._pins.get(run_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._pins.pop(run_id) - 1
                if left:
                    self._pins[run_id] = left
            if not left:
                self.run_ended.set()  # wakes retention for what it skipped

    def is_pinned(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._pins

    def in_flight(self) -> dict[str, RunSpec]:
        """Queued and running runs, id -> spec: what deletion and retention must spare."""
        with self._lock:
            return {run_id: run.spec for run_id, run in self._runs.items()}

    def profile(self) -> Profile | None:
        """The board's hardware profile, resolved once; None when none matches
        (running a model needs no profile; telemetry and --accelerator do)."""
        if not self._profile_loaded:
            self._profile_loaded = True
            try:
                self._profile_obj = profiles.resolve(self.root, self.profile_name)
            except Exception as exc:
                log.warning("hardware profile %r unavailable: %s", self.profile_name, exc)
        return self._profile_obj

    # -- health ---------------------------------------------------------------
    def problem(self) -> str | None:
        """Why the agent cannot work now, in one line; None when it can."""
        if not self._stopping and not all(t.is_alive() for t in self._threads):
            return "the run dispatcher died"
        if self._write_problem is not None:
            return f"cannot write the state dir: {self._write_problem}"
        free = limits.free_bytes(self.state_dir)
        if free is not None and free < self.min_free:
            return (
                f"only {limits.mib(free)} free in the state dir, below the --min-free reserve of "
                f"{limits.mib(self.min_free)}; free some space or lower --min-free"
            )
        return None

    def healthy(self) -> bool:
        return self.problem() is None

    def watch_health(self, fn: Callable[[str | None], None]) -> None:
        """Call ``fn(problem())`` now and whenever it changes (from the
        monitor thread, within about a second)."""
        now = self.problem()
        self._health_last = now
        if now is not None:
            log.error("the agent cannot work: %s", now)
        self._health_fns.append(fn)
        self._call(fn, now)

    def _report_health(self) -> None:
        now = self.problem()
        if now == self._health_last:
            return
        self._health_last = now
        if now is not None:
            log.error("the agent cannot work: %s", now)
        else:
            log.info("the agent can work again")
        for fn in list(self._health_fns):
            self._call(fn, now)

    @staticmethod
    def _call(fn: Callable[[str | None], None], problem: str | None) -> None:
        try:
            fn(problem)
        except Exception:
            log.exception("health callback failed")

    def _note_write_error(self, why: str) -> None:
        self._write_problem = why

    def _write_ok(self) -> None:
        self._write_problem = None

    def _watch(self) -> None:
        """Once a second: write back what a full disk held, probe the state dir
        while writes fail, and report health changes. Never dies."""
        while not self._stop.wait(MONITOR_PERIOD_S):
            try:
                if self.registry.retry():
                    if self._write_problem is not None and self.registry.probe():
                        self._write_ok()
                elif self._write_problem is None:
                    # held after a probe had cleared the problem: still unwritten
                    self._note_write_error(self.registry.held_error or "a final state is held in memory")
                self._report_health()
            except Exception:
                log.exception("run monitor")

    def close(self, timeout: float = 10.0) -> None:
        """Stop: terminate a running worker (its run ends ``interrupted``) and
        mark queued runs interrupted."""
        self._stopping = True
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.terminate()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        self._monitor.join(2.0)
        self.registry.retry()  # a last try at what a full disk held back
        self.registry.close()

    # -- the dispatcher ------------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            try:
                run = self._queue.get()
            except Exception:  # cannot happen; if it does, keep the dispatcher
                log.exception("run queue")
                continue
            if run is None:
                return
            try:
                self._run_one(run)
            except Exception as exc:  # any failure ends this run only; the dispatcher goes on
                log.exception("run %s crashed the executor", run.rd.run_id)
                self._fail(run, exc)

    def _run_one(self, run: ActiveRun) -> None:
        with run.lock:
            if run.claimed:  # cancelled while queued: already ended
                return
            run.claimed = True
        if self._stopping:
            finish(run, "interrupted", "interrupted: the agent stopped before this run started", None)
        elif run.cancelled:
            finish(run, "cancelled", "cancelled before it started", None)
        elif (problem := self._wait_until_able(run)) is not None:
            finish(run, "failed", f"the agent cannot run it: {problem}", "run_failed")
        else:
            self._execution(run).execute()

    def _wait_until_able(self, run: ActiveRun) -> str | None:
        """A short disk-full need not fail the queue: wait (bounded) for the
        agent to be able to work; the problem that remains, or None."""
        deadline = time.monotonic() + PROBLEM_WAIT_S
        while (problem := self.problem()) is not None:
            if time.monotonic() >= deadline or run.cancelled or self._stopping:
                return problem
            self._stop.wait(0.5)
        return None

    def _fail(self, run: ActiveRun, exc: Exception) -> None:
        if isinstance(exc, OSError):
            why = write_error(exc)
            self._note_write_error(why)
        else:
            why = f"agent error: {type(exc).__name__}: {exc}"
        if not run.journal.closed:
            try:
                finish(run, "failed", one_line(why), "run_failed")
            except Exception:  # finish does not raise; should it, still end the run
                log.exception("run %s: finish failed", run.rd.run_id)
        if not run.journal.closed:
            self._retire(run)
            run.journal.close()

    def _execution(self, run: ActiveRun) -> Execution:
        return Execution(
            run,
            ctx=self._ctx,
            task=self.task,
            root=self.root,
            profile=self.profile(),
            meter=self.default_meter,
            agent_info=self._info,
            stopping=lambda: self._stopping,
        )

    def _retire(self, run: ActiveRun) -> None:
        # one step under the lock: a scrape never sees the run neither running nor done
        with self._lock:
            self._inferences_done += run.iterations + run.unmeasured_inferences
            self._runs.pop(run.rd.run_id, None)
        self.run_ended.set()
