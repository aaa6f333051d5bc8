"""The conditions one run ran under, held by its execution: the clocks pinned
for it (``--pin-clocks``, restored at its end), the board state read at its
start (``agent.environment.probe``) and the other processes busy during its
measured phase. ``end`` gives ``environment{}``, ``pinned_clocks{}`` and
the warning lines, and is safe to call twice.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from agent.errors import one_line
from agent.profiles import Profile
from agent.rootfs import RootFS

log = logging.getLogger("edgebench.agent.runs")


class Conditions:
    def __init__(self, root: RootFS, profile: Profile | None, run_dir: Path, pin: bool) -> None:
        self.root = root
        self.profile = profile
        self.state_dir = Path(run_dir).parent.parent  # STATE/runs/<run_id>
        self.run_id = Path(run_dir).name
        self.pin = pin
        self.environment: dict[str, Any] = {}
        self.pinned: dict[str, Any] | None = None
        self._busy_start: Any = None
        self._busy: dict[str, Any] | None = None
        self._ended: tuple[dict, dict | None, list[str]] | None = None

    def begin(self) -> None:
        """Pin (opt-in), then read the environment the run starts in."""
        if self.pin:
            from agent.environment.pin import pin

            try:
                self.pinned = pin(self.root, self.profile, self.state_dir, self.run_id)
            except OSError as exc:  # the journal cannot be written: pin nothing
                self.pinned = {"pinned": [], "errors": [f"journal: {one_line(exc)}"], "restored": True}
        t0 = time.perf_counter()
        try:
            from agent.environment.probe import probe

            self.environment = probe(self.root, self.profile)
        except Exception as exc:  # the probe costs the figure, never the run
            log.exception("environment probe failed")
            self.environment = {"error": one_line(exc), "warnings": []}
        self.environment["probe_ms"] = round((time.perf_counter() - t0) * 1e3, 3)

    def on_phase(self, phase: str | None, worker_pid: int | None) -> None:
        """The measured phase's span: a CPU snapshot of every process at each end.
        The first is taken as the warm-up starts: a snapshot costs tens of ms of
        agent CPU (bench/results/environment.json), which must not land in the
        measured phase; the span then covers warm-up and measured phase."""
        from agent.environment import procs

        if phase in ("warmup", "measure") and self._busy_start is None:
            self._busy_start = procs.Snapshot()
        elif phase in ("profile", "done") and self._busy_start is not None and self._busy is None:
            self._busy = procs.busy_others(
                self._busy_start, procs.Snapshot(), procs.own_pids([worker_pid] if worker_pid else [])
            )

    def end(self, worker_pid: int | None = None) -> tuple[dict, dict | None, list[str]]:
        """Restore what was pinned; (environment, pinned_clocks, warnings)."""
        if self._ended is not None:
            return self._ended
        from agent.environment import procs

        if self._busy is None and self._busy_start is not None:  # the worker died mid-phase
            self.on_phase("done", worker_pid)
        env = dict(self.environment)
        warnings = list(env.get("warnings") or [])
        if self._busy is not None:
            env["other_processes"] = self._busy
            line = procs.warning(self._busy)
            if line:
                warnings.append(line)
        else:
            env["other_processes"] = "unknown (no measured phase)"
        pinned = self.pinned
        if pinned is not None:
            pinned = dict(pinned)
            from agent.environment.pin import restore

            back = restore(self.root, self.state_dir)
            errs = (back or {}).get("errors") or []
            pinned["restored"] = not errs
            if errs:
                pinned["restore_errors"] = errs
                warnings.append(f"clocks pinned for this run not restored: {'; '.join(errs)}")
            for err in pinned.get("errors") or []:
                warnings.append(f"--pin-clocks could not set {err}")
        env["warnings"] = list(warnings)
        self._ended = (env, pinned, warnings)
        return self._ended
