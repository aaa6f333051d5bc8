"""Runs: a queue, and for each run a worker process plus the agent-side
instruments around it.

One run = spawn ``agent.runs.worker.entry`` (spawn context: never fork a
process holding gRPC threads), read its messages in the dispatcher thread,
journal each one (fsynced) and only then let watchers see it. Around the
worker: the telemetry sampler, the power capture, soak window enrichment and
placement gates. Those modules are optional on a board and written
separately, so each is imported lazily and an ImportError means "not
available here", never a failed run.

Runs execute one at a time by default: they contend for the same board.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.clock import now_ns
from agent.errors import BadInput, EdgebenchError
from agent.rootfs import RootFS
from agent.runs.journal import Journal, iter_events
from agent.runs.registry import RESULT_SCHEMA, Registry, RunDir, partial_result
from agent.runs.worker import DEFAULT_TASK
from agent.runtimes.names import RUNTIME_OF_FORMAT, model_format
from agent.spec import RunSpec
from agent.store.artifacts import ArtifactStore

log = logging.getLogger("edgebench.agent.runs")

SAMPLE_STREAM_PERIOD_NS = 1_000_000_000  # telemetry reaches the journal/stream at 1 Hz
_STDERR_TAIL_LINES = 3


class _Run:
    """A run the agent is holding in memory: queued or running."""

    def __init__(self, rd: RunDir, spec: RunSpec, journal: Journal) -> None:
        self.rd = rd
        self.spec = spec
        self.journal = journal
        self.proc: multiprocessing.process.BaseProcess | None = None
        self.cancelled = False
        self.started = False
        self.iterations = 0
        self.throughput_ips = 0.0
        self.t0_ns = 0
        self.instruments_stopped = False
        self.accelerator: dict | None = None  # the profile accelerator it resolved to
        self.unmeasured_inferences = 0  # cold + warm-up: in inferences_total, not in throughput
        self.lock = threading.Lock()


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
        default_meter: Any = None,
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
        self._runs: dict[str, _Run] = {}
        self._queue: queue.Queue[_Run | None] = queue.Queue()
        self._inferences_done = 0
        self._stopping = False
        self._profile_obj: Any = None
        self._profile_loaded = False
        self.recovered = self.registry.recover()
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
        if spec.env:
            raise BadInput("run spec field env comes from the agent's hardware profile (--accelerator)")
        accelerator = None
        if spec.accelerator:
            spec, accelerator = self._resolve_accelerator(spec)
        rd = self.registry.create(spec.to_dict())
        run = _Run(rd, spec, Journal(rd.journal_path))
        run.accelerator = accelerator
        with self._lock:
            self._runs[rd.run_id] = run
        run.journal.append("state", {"status": "queued"})
        self._queue.put(run)
        return rd.run_id

    def _resolve_accelerator(self, spec: RunSpec) -> tuple[RunSpec, dict]:
        """``--accelerator NAME`` -> the spec with the profile's runtime,
        providers/delegate, options and env; judged here so that a board
        without that accelerator is a bad input before any run exists."""
        profile = self._profile()
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
            proc = run.proc
        if proc is not None and proc.is_alive():
            proc.terminate()
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
        # one snapshot: _finish moves a run's count into _inferences_done and
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

    def close(self, timeout: float = 10.0) -> None:
        """Stop: terminate a running worker (its run ends ``interrupted``) and
        mark queued runs interrupted."""
        self._stopping = True
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            with run.lock:
                proc = run.proc
            if proc is not None and proc.is_alive():
                proc.terminate()
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
                    self._finish(
                        run, "interrupted", "interrupted: the agent stopped before this run started", None
                    )
                elif run.cancelled:
                    self._finish(run, "cancelled", "cancelled before it started", None)
                else:
                    self._execute(run)
            except Exception as exc:  # a bug here must not kill the dispatcher: fail this run only
                log.exception("run %s crashed the executor", run.rd.run_id)
                if not run.journal.closed:
                    self._finish(run, "failed", f"agent error: {type(exc).__name__}: {exc}", "run_failed")

    def _execute(self, run: _Run) -> None:
        rd = run.rd
        run.t0_ns = now_ns()
        run.started = True
        rd.update_state(status="running", started_unix=time.time(), t0_ns=run.t0_ns)
        log.info("run %s started: %s %s", rd.run_id, run.spec.kind, run.spec.model_name)
        run.journal.append("state", {"status": "running"}, t_ns=run.t0_ns)
        warnings: list[str] = []
        profile = self._profile()
        sampler = self._start_sampler(run, profile, warnings)
        capture = None
        try:
            capture = self._start_capture(run, warnings)
        except EdgebenchError as exc:
            self._stop_quietly(sampler, warnings)
            self._finish(run, "failed", _one_line(str(exc)), exc.code)
            return

        try:
            self._run_worker(run, profile, sampler, capture, warnings)
        except BaseException:
            # an agent-side bug: leave no worker, sampler or meter behind
            with run.lock:
                proc = run.proc
            if proc is not None and proc.is_alive():
                proc.kill()
            if not run.instruments_stopped:
                self._stop_quietly(sampler, warnings)
                self._stop_quietly(capture, warnings)
            raise

    def _run_worker(self, run: _Run, profile: Any, sampler: Any, capture: Any, warnings: list[str]) -> None:
        rd, spec = run.rd, run.spec
        self._start_cold(run, sampler)

        parent, child = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_worker_entry(),
            args=(spec.to_dict(), str(rd.path), child, self.task),
            name=f"edgebench-worker-{rd.run_id}",
        )
        with run.lock:
            if run.cancelled:
                proc = None
            else:
                proc.start()
                run.proc = proc
        child.close()
        if proc is None:
            parent.close()
            self._stop_quietly(sampler, warnings)
            self._stop_quietly(capture, warnings)
            self._finish(run, "cancelled", "cancelled", None)
            return
        rd.update_state(pid=proc.pid)

        part: dict | None = None
        error: tuple[str, str] | None = None
        windows: list[dict] = []
        while True:
            try:
                msg = parent.recv()
            except (EOFError, OSError):
                break
            except Exception as exc:  # an unpicklable message: note it, keep reading
                warnings.append(f"bad worker message: {exc}")
                continue
            if not isinstance(msg, dict):
                continue
            mtype = msg.get("type")
            if mtype == "result":
                part = msg.get("data") or {}
                # the exact count (progress messages lag by up to 0.5 s)
                run.iterations = int(part.get("iterations") or run.iterations)
                # the cold first inference and the warm-up count as inferences too
                run.unmeasured_inferences = int(part.get("warmup_iterations") or 0) + (
                    1 if part.get("first_inference_ms") is not None else 0
                )
            elif mtype == "error":
                error = (
                    str(msg.get("code") or "run_failed"),
                    _one_line(str(msg.get("message") or "run failed")),
                )
            elif mtype == "window":
                windows.append(self._on_window(run, msg, sampler, capture, profile))
            elif mtype == "progress":
                run.iterations = int(msg.get("iterations") or 0)
                run.throughput_ips = float(msg.get("throughput_ips") or 0.0)
                run.journal.append("progress", _payload(msg), t_ns=msg.get("t_ns"))
            elif mtype == "phase":
                run.journal.append("phase", _payload(msg), t_ns=msg.get("t_ns"))
            else:
                run.journal.append("log", _payload(msg), t_ns=msg.get("t_ns"))
        parent.close()
        proc.join()
        exitcode = proc.exitcode

        telemetry = self._stop_quietly(sampler, warnings)
        capture_summary = self._stop_quietly(capture, warnings)
        run.instruments_stopped = True
        if run.cancelled:
            status, err, code = "cancelled", "cancelled", None
        elif self._stopping and part is None and error is None:
            status, err, code = "interrupted", "interrupted: the agent stopped during this run", None
        elif part is not None:
            status, err, code = "completed", None, None
        elif error is not None:
            status, err, code = "failed", error[1], error[0]
        else:
            status, err, code = "failed", worker_died_message(exitcode, rd.path / "stderr.log"), "run_failed"

        doc = self._assemble(
            run, status, err, code, part, windows, sampler, telemetry, capture_summary, profile
        )
        if warnings:
            doc["warnings"] = warnings
        self._finish(run, status, err, code, doc)

    def _finish(
        self, run: _Run, status: str, error: str | None, code: str | None, doc: dict | None = None
    ) -> None:
        rd = run.rd
        ended = time.time()
        if doc is None:
            rd.update_state(ended_unix=ended)
            doc = partial_result(rd, status, error)
            doc["error_code"] = code
        # the document first: a reader that sees the final status finds it
        rd.write_result(doc)
        rd.update_state(status=status, ended_unix=ended, error=error, error_code=code, pid=None)
        run.journal.append("result", {"status": status, "error": error, "error_code": code})
        log.info("run %s %s%s", rd.run_id, status, f": {error}" if error else "")
        # one step under the lock: a scrape never sees the run neither running nor done
        with self._lock:
            self._inferences_done += run.iterations + run.unmeasured_inferences
            self._runs.pop(rd.run_id, None)
        run.throughput_ips = 0.0
        run.journal.close()

    # -- instruments ---------------------------------------------------------
    def _profile(self) -> Any:
        """The hardware profile object for the sampler / analyses; None when the
        profiles module is not available."""
        if not self._profile_loaded:
            self._profile_loaded = True
            try:
                from agent import profiles  # noqa: PLC0415 - optional, lazy
            except ImportError:
                return None
            try:
                self._profile_obj = profiles.resolve(self.root, self.profile_name)
            except Exception as exc:  # no matching profile is not fatal to running a model
                log.warning("hardware profile %r unavailable: %s", self.profile_name, exc)
        return self._profile_obj

    def _start_sampler(self, run: _Run, profile: Any, warnings: list[str]) -> Any:
        if not run.spec.telemetry:
            return None
        try:
            from agent.telemetry.sampler import Sampler
        except ImportError:
            return None
        last = [0]

        def on_sample(sample: dict) -> None:
            t = int(sample.get("t_ns") or now_ns())
            if t - last[0] >= SAMPLE_STREAM_PERIOD_NS and not run.journal.closed:
                last[0] = t
                try:
                    run.journal.append("sample", sample, t_ns=t)
                except RuntimeError:  # journal closed under us at the end of the run
                    pass

        try:
            sampler = Sampler(self.root, profile, rate_hz=run.spec.telemetry_rate_hz)
            sampler.start(run.rd.path / "telemetry.jsonl", on_sample)
            return sampler
        except Exception as exc:
            warnings.append(f"telemetry unavailable: {_one_line(str(exc))}")
            return None

    def _start_capture(self, run: _Run, warnings: list[str]) -> Any:
        meter = run.spec.meter or self.default_meter
        if meter is None:
            return None
        try:
            from agent.power.capture import Capture
        except ImportError:
            warnings.append("power capture unavailable on this agent")
            return None
        capture = Capture(meter, run.rd.path)
        capture.start()  # a meter that cannot be opened fails the run (EdgebenchError)
        return capture

    def _start_cold(self, run: _Run, sampler: Any) -> dict | None:
        """--start-cold: wait at idle (bounded) until temperatures stop falling."""
        soak = run.spec.soak
        if run.spec.kind != "soak" or soak is None or not soak.start_cold or sampler is None:
            return None
        from agent.soak.coldstart import wait_with_sampler

        run.journal.append("log", {"message": f"waiting up to {soak.start_cold_max_s:g} s for a cold start"})
        res = wait_with_sampler(sampler, soak.start_cold_max_s, should_stop=lambda: run.cancelled)
        run.journal.append("log", {"message": "cold start: " + res["reason"], "cold_start": res})
        run.cold_start = res  # type: ignore[attr-defined]  # read back in _assemble
        return res

    def _on_window(
        self, run: _Run, msg: dict, sampler: Any, capture: Any = None, profile: Any = None
    ) -> dict:
        t0 = int(msg.get("t_start_ns") or 0)
        t1 = int(msg.get("t_end_ns") or 0)
        w = {
            "t_s": (t0 - run.t0_ns) / 1e9,
            "t_start_ns": t0,
            "t_end_ns": t1,
            "iterations": msg.get("iterations"),
            "throughput_ips": msg.get("throughput_ips"),
            "p50_ms": msg.get("p50_ms"),
            "p99_ms": msg.get("p99_ms"),
        }
        if sampler is not None:
            try:
                w.update(sampler.window(t0, t1))
            except Exception as exc:
                log.warning("telemetry window failed: %s", exc)
        # mean power: the current meter when it covers the window, else the board's rails
        meter = _meter_window(capture, t0, t1, profile)
        if meter is not None:
            w["power_w"] = round(meter["power_w"], 4)
            w["power_source"] = "meter"
        elif w.get("power_w") is not None:
            w["power_source"] = "board"
        run.journal.append("window", w, t_ns=t1 or None)
        return w

    @staticmethod
    def _stop_quietly(instrument: Any, warnings: list[str]) -> dict | None:
        if instrument is None:
            return None
        try:
            return instrument.stop()
        except Exception as exc:
            warnings.append(f"{type(instrument).__name__}.stop failed: {_one_line(str(exc))}")
            return None

    def _assemble(
        self,
        run: _Run,
        status: str,
        error: str | None,
        code: str | None,
        part: dict | None,
        windows: list[dict],
        sampler: Any,
        telemetry: dict | None,
        capture_summary: dict | None,
        profile: Any,
    ) -> dict:
        rd, spec = run.rd, run.spec
        st = rd.state()
        doc: dict[str, Any] = {
            "schema": RESULT_SCHEMA,
            "run_id": rd.run_id,
            "kind": spec.kind,
            "status": status,
            "error": error,
            "error_code": code,
            "created_unix": st.get("created_unix"),
            "started_unix": st.get("started_unix"),
            "ended_unix": time.time(),
            "t0_ns": run.t0_ns,
            "labels": spec.labels,
            "spec": spec.to_dict(),
        }
        try:
            doc["agent"] = self._info()
        except Exception as exc:
            doc["agent"] = {"error": _one_line(str(exc))}
        doc["model"] = {"name": spec.model_name, "sha256": spec.model_sha256}
        if run.accelerator:
            doc["accelerator"] = run.accelerator
        if part:
            doc.update(part)
        elif run.iterations:
            doc["iterations"] = run.iterations
            doc["throughput_ips"] = run.throughput_ips
            doc["partial"] = True
        if telemetry is not None:
            doc["telemetry"] = telemetry
        if capture_summary is not None:
            doc["power"] = self._power(rd, spec, capture_summary, profile, doc)
        if spec.kind == "soak":
            doc["soak"] = self._soak(windows, sampler, spec, profile, run.t0_ns)
            doc.pop("soak_windows", None)  # the worker's copy; soak.windows is enriched
            if getattr(run, "cold_start", None) is not None:
                doc["soak"]["cold_start"] = run.cold_start
        if status == "completed":
            gates = self._gates(doc, spec)
            if gates is not None:
                doc["gates"] = gates
            soak_gate = _soak_gate(doc.get("soak"))
            if soak_gate is not None:
                doc.setdefault("gates", []).append(soak_gate)
        return doc

    def _power(self, rd: RunDir, spec: RunSpec, capture: dict, profile: Any, doc: dict) -> dict:
        try:
            import numpy as np

            from agent.power.analysis import analyze, cross_check_run
        except ImportError:
            return dict(capture)
        try:
            it_path = rd.path / "iterations.npy"
            iterations = np.load(it_path) if it_path.exists() else np.zeros((0, 3), dtype=np.int64)
            budget = _profile_value(profile, "budget") or {}
            power = analyze(
                rd.path,
                iterations,
                budget.get("budget_w"),
                budget.get("supply_v"),
                spec.transient_a,
                run_start_ns=doc.get("t0_ns"),  # transients' t_s from run start
            )
            # the board's own input rail(s) (Jetson INA3221) against the meter
            cc = cross_check_run(rd.path, power, _profile_value(profile, "input_rails"))
            if cc is not None:
                power["cross_check"] = cc
            return {**capture, **power}
        except Exception as exc:
            out = dict(capture)
            out["error"] = f"power analysis failed: {_one_line(str(exc))}"
            return out

    def _soak(self, windows: list[dict], sampler: Any, spec: RunSpec, profile: Any, t0_ns: int) -> dict:
        sources = {w.get("power_source") for w in windows} - {None}
        base = {
            "window_s": spec.soak.window_s if spec.soak else None,
            "windows": windows,
            # where the windows' power_w came from: meter, board, or mixed (a meter lost mid-soak)
            "power_source": sources.pop() if len(sources) == 1 else ("mixed" if sources else None),
        }
        try:
            from agent.soak.analysis import analyze_soak
        except ImportError:
            return base
        try:
            samples = sampler.samples() if sampler is not None else []
            return {**base, **analyze_soak(windows, samples, spec, profile, t0_ns=t0_ns)}
        except Exception as exc:
            base["error"] = f"soak analysis failed: {_one_line(str(exc))}"
            return base

    @staticmethod
    def _gates(doc: dict, spec: RunSpec) -> list[dict] | None:
        try:
            from agent.placement.gates import evaluate
        except ImportError:
            return None
        try:
            return list(evaluate(doc, spec))
        except Exception as exc:
            return [
                {
                    "name": "gates",
                    "passed": False,
                    "message": f"gate evaluation failed: {_one_line(str(exc))}",
                }
            ]


def _soak_gate(soak: dict | None) -> dict | None:
    """--target-ips: the soak_target gate (agent/soak/analysis.py)."""
    if not soak:
        return None
    try:
        from agent.soak.analysis import soak_gate
    except ImportError:
        return None
    return soak_gate(soak)


def _meter_window(capture: Any, t0_ns: int, t1_ns: int, profile: Any) -> dict | None:
    """The meter's mean power over a soak window, None when there is no meter,
    it has no voltage (no bus voltage, no profile supply) or it missed most of
    the window."""
    if capture is None or t1_ns <= t0_ns:
        return None
    try:
        from agent.power.analysis import window_power

        supply_v = (_profile_value(profile, "budget") or {}).get("supply_v")
        res = window_power(capture.window(t0_ns, t1_ns), t0_ns, t1_ns, supply_v)
    except Exception as exc:  # never lose a window for its power figure
        log.warning("meter window failed: %s", exc)
        return None
    return res if res is not None and res["power_w"] is not None else None


def _worker_entry() -> Callable[..., None]:
    from agent.runs import worker

    return worker.entry


def _payload(msg: dict) -> dict:
    return {k: v for k, v in msg.items() if k != "type"}


def _profile_value(profile: Any, key: str) -> Any:
    if profile is None:
        return None
    if isinstance(profile, dict):
        return profile.get(key)
    return getattr(profile, key, None)


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def stderr_tail(path: Path, lines: int = _STDERR_TAIL_LINES, max_bytes: int = 8192) -> str:
    """The last non-empty lines of a worker's stderr.log, joined on one line."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    tail = [ln.strip() for ln in data.splitlines() if ln.strip()][-lines:]
    return " | ".join(tail)


def worker_died_message(exitcode: int | None, stderr_path: Path) -> str:
    """``worker died: SIGSEGV (signal 11); stderr: ...``: one line."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        msg = f"worker died: {name} (signal {-exitcode})"
        if -exitcode == signal.SIGKILL:
            msg += ", killed (out of memory?)"
    elif exitcode is None:
        msg = "worker died: unknown cause"
    else:
        msg = f"worker died: exit code {exitcode} without a result"
    tail = stderr_tail(stderr_path)
    if tail:
        msg += f"; stderr: {tail}"
    return _one_line(msg)
