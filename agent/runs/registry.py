"""The run registry: one directory per run under ``STATE/runs/<run_id>/``
(layout in docs/internals.md). Run ids sort by creation time: a UTC timestamp
with milliseconds, then random hex so two agents never collide.

A finished run's commit point is its result.json (written atomically, with
a final status); state.json and the index follow it. On agent start
``recover()`` looks only at the runs the index (agent/runs/index.py) says are
``queued``/``running``: a final result.json wins (the agent died between the
commit and state.json); otherwise the run becomes ``interrupted``, with a
result.json built from whatever the journal holds.

Just over 400 lines because a run directory's life (create, state, result,
recovery, the held copy of a run a full disk could not write) is one owner's.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import atomic, rundir
from agent.runs.index import INDEX_FILE, IndexBroken, RunIndex

log = logging.getLogger("edgebench.agent.runs")

# a run's status in state.json
ACTIVE = ("queued", "running")
FINAL = ("completed", "failed", "cancelled", "interrupted")
PAGE_MAX = 1000  # runs in one ListRuns reply: far below the gRPC message limit

_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$")


def new_run_id(t_unix: float | None = None) -> str:
    t = time.time() if t_unix is None else t_unix
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))
    return f"{stamp}{int(t * 1000) % 1000:03d}Z-{secrets.token_hex(3)}"


def valid_run_id(run_id: str) -> bool:
    return bool(_RUN_ID.match(run_id or ""))


def write_json_atomic(path: Path, data: Any) -> None:
    """A run file, atomically (``agent.atomic``): a failed write leaves no .tmp
    behind and raises OSError naming ``path`` (``write_error`` says it in one
    line: "no space left on device writing X")."""
    atomic.write_json(path, data, indent=1, default=str)


def write_error(exc: BaseException) -> str:
    """``no space left on device writing result.json``: what a failed write of
    a run's file says, in one line."""
    if isinstance(exc, OSError):
        what = os.strerror(exc.errno).lower() if exc.errno else (exc.strerror or str(exc))
        name = Path(exc.filename).name if exc.filename else "the state dir"
        return f"{what} writing {name}"
    return f"{type(exc).__name__}: {exc}"


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


class RunDir:
    """One run's directory and its small state file."""

    def __init__(self, path: Path, registry: Registry | None = None) -> None:
        self.path = Path(path)
        self.run_id = self.path.name
        self._registry = registry

    @property
    def journal_path(self) -> Path:
        return self.path / rundir.JOURNAL

    def spec(self) -> dict:
        return _read_json(self.path / rundir.SPEC) or {}

    def _held(self) -> tuple[dict, dict | None] | None:
        return self._registry.held(self.run_id) if self._registry is not None else None

    def state(self) -> dict:
        held = self._held()
        if held is not None:
            return dict(held[0])
        return _read_json(self.path / rundir.STATE) or {"status": "interrupted"}

    def update_state(self, **changes: Any) -> dict:
        st = self.state()
        st.update(changes)
        write_json_atomic(self.path / rundir.STATE, st)
        if self._registry is not None:
            self._registry.indexed(self, st)
        return st

    def result(self) -> dict | None:
        held = self._held()
        if held is not None and held[1] is not None:
            return held[1]
        return _read_json(self.path / rundir.RESULT)

    def final_result(self) -> dict | None:
        """result.json when it is this run's committed, final result."""
        doc = _read_json(self.path / rundir.RESULT)
        if doc and doc.get("run_id") == self.run_id and doc.get("status") in FINAL:
            return doc
        return None

    def write_result(self, doc: dict) -> None:
        write_json_atomic(self.path / rundir.RESULT, doc)

    def hold(self, state: dict, result: dict | None) -> None:
        """Serve this final state (and result) from memory until the registry
        can write them (``Registry.flush_held``): the disk refused them."""
        if self._registry is not None:
            self._registry.hold(self, state, result)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir() if p.is_file() and not p.name.endswith(".tmp"))

    def last_seq(self) -> int:
        """The last complete event's seq, read from the journal's tail (ListRuns
        calls this for every run; journals of long soaks are large)."""
        try:
            with open(self.journal_path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 65536))
                tail = f.read()
        except OSError:
            return 0
        for line in reversed(tail.splitlines()):
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a torn last line, or a line cut by the seek
            if isinstance(ev, dict) and isinstance(ev.get("seq"), int):
                return ev["seq"]
        return 0


class Registry:
    """The run directories, with the index that lists and recovers them."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir) / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._index = RunIndex(Path(state_dir) / INDEX_FILE)
        # runs whose final state could not be written (a full disk): served
        # from memory, and written by flush_held() once space returns
        self._held: dict[str, tuple[dict, dict | None]] = {}
        self._held_lock = threading.Lock()
        self.held_error: str | None = None  # why the last flush_held() failed
        self._unindexed: set[str] = set()  # index updates that failed, retried later
        self._open_index()

    # -- the index ---------------------------------------------------------------
    def _open_index(self) -> None:
        """Open the index and reconcile it with the directory names: no file of
        a run both agree on is read."""
        self._index.open()
        names = self._names()
        try:
            known = self._index.ids()
        except IndexBroken:
            self._index.close()
            self._index._remove_files()
            self._index.open()
            known = set()
        missing = names - known
        if missing:
            if not self._index.rebuilt:
                log.info("indexing %d run(s) the index did not know", len(missing))
            rows = [self._row(RunDir(self.root / n, self)) for n in sorted(missing)]
            self._index.upsert_many([r for r in rows if r is not None])
        gone = known - names
        if gone:
            self._index.delete(gone)

    def _names(self) -> set[str]:
        """Run directory names: one scandir, no stat, no file read."""
        with os.scandir(self.root) as it:
            return {e.name for e in it if valid_run_id(e.name)}

    def _row(self, rd: RunDir) -> tuple[str, float, str | None, str] | None:
        """The index row of a directory the index did not know; None (and the
        directory removed) for a create cut short before its spec.json."""
        spec = _read_json(rd.path / rundir.SPEC)
        if spec is None:
            if not (rd.path / rundir.JOURNAL).exists():
                shutil.rmtree(rd.path, ignore_errors=True)
            return None
        st = _read_json(rd.path / rundir.STATE) or {}
        created = st.get("created_unix")
        if not isinstance(created, (int, float)):
            created = _created_of(rd.run_id)
        status = st.get("status") if isinstance(st.get("status"), str) else "interrupted"
        kind = spec.get("kind") if isinstance(spec.get("kind"), str) else None
        return rd.run_id, float(created), kind, status

    def indexed(self, rd: RunDir, state: dict) -> None:
        """state.json was written: the index follows (a failure is retried later;
        the row is then at worst still active, which recovery re-reads)."""
        status = state.get("status")
        if not isinstance(status, str):
            return
        try:
            self._index.set_status(rd.run_id, status)
            self._unindexed.discard(rd.run_id)
        except (sqlite3.Error, IndexBroken) as exc:
            log.warning("run index: cannot record %s %s: %s", rd.run_id, status, exc)
            self._unindexed.add(rd.run_id)

    def retry(self) -> bool:
        """Write what a full disk held back (index rows, final states); True
        when nothing is left held."""
        for run_id in list(self._unindexed):
            row = self._row(RunDir(self.root / run_id, self)) if (self.root / run_id).is_dir() else None
            try:
                if row is not None:
                    self._index.upsert(*row)
                self._unindexed.discard(run_id)
            except (sqlite3.Error, IndexBroken):
                break  # still failing: the next round
        return self.flush_held()

    # -- runs ----------------------------------------------------------------------
    def create(self, spec_dict: dict) -> RunDir:
        now = time.time()
        run_id = new_run_id(now)
        path = self.root / run_id
        path.mkdir()
        rd = RunDir(path, self)
        state = {
            "status": "queued",
            "created_unix": now,
            "started_unix": None,
            "ended_unix": None,
            "error": None,
            "error_code": None,
            "pid": None,
        }
        try:
            write_json_atomic(path / rundir.SPEC, spec_dict)
            write_json_atomic(path / rundir.STATE, state)
        except BaseException:
            # no half-made run dir: nothing was stored (issue 13: 95 were left)
            shutil.rmtree(path, ignore_errors=True)
            raise
        try:
            self._index.upsert(run_id, now, spec_dict.get("kind"), "queued")
        except (sqlite3.Error, IndexBroken) as exc:
            log.warning("run index: cannot add %s: %s", run_id, exc)
            self._unindexed.add(run_id)
        return rd

    def remove(self, rd: RunDir) -> None:
        """Forget a run that never got going (its queueing failed)."""
        shutil.rmtree(rd.path, ignore_errors=True)
        self.forget(rd.run_id)

    def forget(self, run_id: str) -> None:
        """Drop a run whose directory is gone (deleted, retention) from the index."""
        try:
            self._index.delete([run_id])
        except (sqlite3.Error, IndexBroken) as exc:
            log.warning("run index: cannot drop %s: %s", run_id, exc)  # reconciled at the next start

    def get(self, run_id: str) -> RunDir | None:
        if not valid_run_id(run_id):
            return None
        path = self.root / run_id
        return RunDir(path, self) if (path / rundir.SPEC).is_file() else None

    def page(self, limit: int, token: str = "") -> tuple[list[RunDir], str]:
        """Up to ``limit`` runs, newest first, after ``token`` (the previous
        page's next token); returns them and the next page's token ("" at the
        end). Reads nothing of the runs outside the page."""
        before = parse_token(token) if token else None
        rows = self._index.page(limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        runs = []
        for run_id, _created in rows:
            rd = self.get(run_id)
            if rd is not None:
                runs.append(rd)
        nxt = f"{rows[-1][1]!r}/{rows[-1][0]}" if more and rows else ""
        return runs, nxt

    def list(self, limit: int = 0) -> list[RunDir]:
        """Newest first (every run when ``limit`` is 0)."""
        runs, token = self.page(limit or PAGE_MAX)
        while not limit and token:
            more, token = self.page(PAGE_MAX, token)
            runs += more
        return runs

    def recover(self, partial_result: Callable[[RunDir, str, str], dict]) -> list[str]:
        """Settle the runs a dead agent left in flight (the index's active rows
        only: startup reads no other run), with the result
        ``partial_result(rd, status, error)`` builds from their journal (agent/runs/
        result.py; passed in so that the registry, which the controller imports for
        FINAL, stays free of the result's analyses); returns their ids.

        A committed final result.json wins: the agent died after its commit
        point and before state.json followed."""
        done = []
        for run_id in sorted(self._index.with_status(ACTIVE)):
            rd = RunDir(self.root / run_id, self)
            st = rd.state()
            status = st.get("status")
            if status not in ACTIVE:
                self.indexed(rd, st)  # state.json moved on; the index lagged
                continue
            final = rd.final_result()
            if final is not None:
                rd.update_state(
                    status=final["status"],
                    ended_unix=final.get("ended_unix") or time.time(),
                    error=final.get("error"),
                    error_code=final.get("error_code"),
                    pid=None,
                )
            else:
                error = f"interrupted: the agent stopped while this run was {status}"
                rd.update_state(status="interrupted", ended_unix=time.time(), error=error, pid=None)
                rd.write_result(partial_result(rd, "interrupted", error))
            done.append(run_id)
        return done

    # -- states a full disk held back -------------------------------------------
    def held(self, run_id: str) -> tuple[dict, dict | None] | None:
        with self._held_lock:
            return self._held.get(run_id)

    def hold(self, rd: RunDir, state: dict, result: dict | None) -> None:
        """Keep a run's final state (and result) in memory: its files could not
        be written. Readers see them; flush_held() writes them later."""
        with self._held_lock:
            self._held[rd.run_id] = (dict(state), result)

    def flush_held(self) -> bool:
        with self._held_lock:
            items = list(self._held.items())
        for run_id, (state, result) in items:
            rd = RunDir(self.root / run_id, None)  # the files, not the held copy
            try:
                if result is not None:
                    rd.write_result(result)
                write_json_atomic(rd.path / rundir.STATE, state)
            except OSError as exc:
                self.held_error = write_error(exc)
                return False
            with self._held_lock:
                self._held.pop(run_id, None)
            self.indexed(rd, state)
            log.info("run %s: its final state is written now", run_id)
        return True

    def probe(self) -> bool:
        """Can the state dir take a small file now (write, fsync, rename)?"""
        path = self.root / ".probe.json"
        try:
            write_json_atomic(path, {"probe": True})
            path.unlink()
            return True
        except OSError:
            return False

    def close(self) -> None:
        self._index.close()


def parse_token(token: str) -> tuple[float, str]:
    """A page token ("<created>/<run_id>") -> the key the next page starts below."""
    created, _, run_id = token.partition("/")
    try:
        value = float(created)
    except ValueError:
        value = None
    if value is None or not valid_run_id(run_id):
        raise ValueError(f"bad page token {token[:60]!r}")
    return value, run_id


def _created_of(run_id: str) -> float:
    """The creation time a run id carries (UTC, ms): for a run without state.json."""
    try:
        t = time.strptime(run_id[:15], "%Y%m%dT%H%M%S")
        return float(calendar.timegm(t)) + int(run_id[15:18]) / 1000.0
    except (ValueError, IndexError):
        return 0.0
