"""The agent's runs: a queue, the public API the servicer and /metrics call
(start, cancel, wait, watch, stats, close), and the dispatcher threads that
take runs off the queue and hand each to an ``Execution``.

Runs execute one at a time by default: they contend for the same board.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from agent import portability, profiles
from agent.errors import BadInput, EdgebenchError
from agent.profiles import Profile
from agent.rootfs import RootFS
from agent.runs.execution import ActiveRun, Execution, finish
from agent.runs.journal import Journal, iter_events
from agent.runs.registry import Registry
from agent.runs.result import partial_result
from agent.runs.worker import DEFAULT_TASK
from agent.runtimes.names import RUNTIME_OF_FORMAT, model_format
from agent.spec import MeterSpec, RunSpec
from agent.store.artifacts import ArtifactStore

log = logging.getLogger("edgebench.agent.runs")


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
    ) -> None:
        self.state_dir = Path(state_dir)
        self.store = store
        self.registry = Registry(self.state_dir)
        self.root = root or RootFS("/")
        self.profile_name = profile
        self._info = info or (lambda: {})
        self.task = task
        # the agent's own meter (serve --meter) measures runs that name none
        self.default_meter = default_meter
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._runs: dict[str, ActiveRun] = {}
        self._queue: queue.Queue[ActiveRun | None] = queue.Queue()
        self._inferences_done = 0
        self.run_ended = threading.Event()  # set as each run retires: retention follows it
        self._stopping = False
        self._profile_obj: Profile | None = None
        self._profile_loaded = False
        self.recovered = self.registry.recover(partial_result)
        self._threads = [
            threading.Thread(target=self._dispatch, name=f"edgebench-run-{i}", daemon=True)
            for i in range(max(1, concurrency))
        ]
        for t in self._threads:
            t.start()

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
        if spec.model_sha256 is not None:
            # an engine built for another SM / TensorRT / L4T fails late and
            # cryptically: refuse it before a run exists
            portability.guard(self.store, spec.model_sha256, self._info)
        if spec.env:
            raise BadInput("run spec field env comes from the agent's hardware profile (--accelerator)")
        accelerator = None
        if spec.accelerator:
            spec, accelerator = self._resolve_accelerator(spec)
        rd = self.registry.create(spec.to_dict())
        run = ActiveRun(rd, spec, Journal(rd.journal_path), accelerator, on_end=self._retire)
        with self._lock:
            self._runs[rd.run_id] = run
        run.journal.append("state", {"status": "queued"})
        self._queue.put(run)
        return rd.run_id

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
        """True if the run was queued or running (now cancelled or cancelling)."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            return False
        with run.lock:
            run.cancelled = True
        run.terminate()
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
        for t in self._threads:
            t.join(timeout)

    # -- the dispatcher ------------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            run = self._queue.get()
            if run is None:
                return
            try:
                if self._stopping:
                    finish(run, "interrupted", "interrupted: the agent stopped before this run started", None)
                elif run.cancelled:
                    finish(run, "cancelled", "cancelled before it started", None)
                else:
                    self._execution(run).execute()
            except Exception as exc:  # a bug here must not kill the dispatcher: fail this run only
                log.exception("run %s crashed the executor", run.rd.run_id)
                if not run.journal.closed:
                    finish(run, "failed", f"agent error: {type(exc).__name__}: {exc}", "run_failed")

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
