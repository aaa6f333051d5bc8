"""Housekeeping of the state dir: partial uploads that expire, finished runs
that are deleted on request (``DeleteRun``) or by the retention policy
(``serve --keep-runs N`` / ``--keep-days D``).

A run in flight (queued or running, by its state.json or the run manager)
is never deleted. A deleted run's directory is first renamed to
``runs/.deleted-<id>`` (invisible to the registry, whose names are run ids),
then removed: a crash half-way leaves no half-run behind, and the leftovers
are removed at the next start.
"""

from __future__ import annotations

import calendar
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from agent.runs.manager import RunManager
from agent.runs.registry import FINAL, valid_run_id
from agent.store.artifacts import ArtifactStore
from agent.store.errors import StoreError

log = logging.getLogger("edgebench.agent")

TRASH_PREFIX = ".deleted-"
DEFAULT_UPLOAD_EXPIRY_S = 24 * 3600.0
# runs deleted per retention pass: a first start over a long history does the
# rest in later passes instead of stalling startup
RETENTION_BATCH = 100
# the housekeeper's longest sleep (a run's end wakes it at once)
POLL_S = 2.0


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def created_unix(run_id: str) -> float:
    """A run id's creation time (``YYYYMMDDTHHMMSSmmmZ-...``, UTC)."""
    stamp = time.strptime(run_id[:15], "%Y%m%dT%H%M%S")
    return calendar.timegm(stamp) + int(run_id[15:18]) / 1000.0


def delete_run(runs: RunManager, run_id: str) -> int:
    """Delete a finished run's directory; returns the bytes freed. StoreError
    NOT_FOUND for an unknown run, FAILED_PRECONDITION for one in flight."""
    rd = runs.registry.get(run_id)
    if rd is None:
        raise StoreError("NOT_FOUND", f"no run {run_id}")
    status = rd.state().get("status")
    if run_id in runs.in_flight() or status not in FINAL:
        raise StoreError(
            "FAILED_PRECONDITION", f"run {run_id} is {status or 'in flight'}: cancel it or wait for it to end"
        )
    size = _tree_bytes(rd.path)
    trash = rd.path.parent / f"{TRASH_PREFIX}{run_id}"
    os.rename(rd.path, trash)  # one step: the run is gone for every reader
    shutil.rmtree(trash, ignore_errors=True)
    runs.registry.forget(run_id)  # and from the run index that pages ListRuns
    return size


def empty_trash(runs_root: Path) -> int:
    """Remove what a crash left half-deleted; returns how many."""
    n = 0
    for p in runs_root.glob(f"{TRASH_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)
        n += 1
    return n


def retention_victims(
    runs: RunManager, keep_runs: int, keep_days: float, now: float | None = None, limit: int = RETENTION_BATCH
) -> list[str]:
    """Finished runs the policy deletes: beyond the newest ``keep_runs``
    finished ones, or ended more than ``keep_days`` ago (0 = that rule off)."""
    now = time.time() if now is None else now
    try:
        names = sorted(n for n in os.listdir(runs.registry.root) if valid_run_id(n))  # oldest first
    except OSError:
        return []
    flight = set(runs.in_flight())
    states: dict[str, dict] = {}

    def final_state(name: str) -> dict | None:
        if name in flight:
            return None
        if name not in states:
            rd = runs.registry.get(name)
            states[name] = rd.state() if rd is not None else {}
        st = states[name]
        return st if st.get("status") in FINAL else None

    doomed: list[str] = []
    if keep_runs > 0:
        kept = 0
        for name in reversed(names):
            if final_state(name) is None:
                continue
            kept += 1
            if kept > keep_runs:
                doomed.append(name)
    if keep_days > 0:
        cutoff = now - keep_days * 86400.0
        for name in names:
            if created_unix(name) >= cutoff:
                break  # ids sort by creation, and a run ends after it is created
            st = final_state(name)
            if st is not None and float(st.get("ended_unix") or created_unix(name)) < cutoff:
                doomed.append(name)
    unique = sorted(set(doomed))  # oldest first
    return unique[:limit]


class Housekeeper:
    """Sweeps expired uploads (at start, then every quarter of the expiry, at
    most every 10 minutes) and applies run retention (at start, then as each
    run ends)."""

    def __init__(
        self,
        store: ArtifactStore,
        runs: RunManager,
        upload_expiry_s: float = DEFAULT_UPLOAD_EXPIRY_S,
        keep_runs: int = 0,
        keep_days: float = 0.0,
    ) -> None:
        self.store = store
        self.runs = runs
        self.upload_expiry_s = float(upload_expiry_s)
        self.keep_runs = int(keep_runs)
        self.keep_days = float(keep_days)
        self.sweep_every_s = min(600.0, max(0.1, self.upload_expiry_s / 4))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgebench-housekeeping", daemon=True)
        self._more = False  # a retention pass hit its batch bound: another follows

    @property
    def retaining(self) -> bool:
        return self.keep_runs > 0 or self.keep_days > 0

    def at_start(self) -> None:
        """Before serving: leftovers of a crash, one bounded sweep and pass."""
        empty_trash(self.runs.registry.root)
        self.sweep_uploads()
        if self.retaining:
            self.retain()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        # wake the loop now: it sleeps on run_ended, and waiting out its POLL_S
        # made every agent stop take 2 s (the loop sees _stop and returns)
        self.runs.run_ended.set()
        self._thread.join(5.0)

    def alive(self) -> bool:
        return self._thread.is_alive() or not self._thread.ident

    def sweep_uploads(self) -> list[str]:
        expired = self.store.expire_uploads(self.upload_expiry_s)
        if expired:
            log.info(
                "removed %d partial upload(s) idle over %.0f s: %s",
                len(expired),
                self.upload_expiry_s,
                expired,
            )
        return expired

    def retain(self) -> list[str]:
        deleted = []
        victims = retention_victims(self.runs, self.keep_runs, self.keep_days)
        for run_id in victims:
            try:
                delete_run(self.runs, run_id)
                deleted.append(run_id)
            except (StoreError, OSError) as exc:  # raced with a reader or a delete: next pass
                log.debug("retention skipped %s: %s", run_id, exc)
        self._more = len(victims) >= RETENTION_BATCH
        if deleted:
            log.info(
                "retention (keep-runs %d, keep-days %g) deleted %d run(s)",
                self.keep_runs,
                self.keep_days,
                len(deleted),
            )
        return deleted

    def _loop(self) -> None:
        next_sweep = time.monotonic() + self.sweep_every_s
        while not self._stop.is_set():
            # wakes as a run ends (the manager sets run_ended), else to sweep
            ended = self.runs.run_ended.wait(min(POLL_S, self.sweep_every_s))
            if self._stop.is_set():
                return
            try:
                if ended:
                    self.runs.run_ended.clear()
                if self.retaining and (ended or self._more):
                    self.retain()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_every_s
                    self.sweep_uploads()
            except Exception:  # housekeeping must never take the agent down
                log.exception("housekeeping failed; retrying at the next pass")
