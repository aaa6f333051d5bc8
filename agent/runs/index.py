"""The run index: ``STATE/runs-index.sqlite``, one row per run directory
(run_id, created_unix, kind, status), so that listing a page of runs and
finding the runs left in flight cost the same at 20 runs and at 20,000
(issue 13: ListRuns read every state.json).

The run directories stay the truth; the index is a cache of them:

- a lost or corrupt index is rebuilt from the directories;
- a directory the index does not know, or a row whose directory is gone, is
  reconciled at open from the directory names alone (no file is read for the
  runs both agree on);
- statuses only move forward (queued, running, then final) and state.json is
  written before the index, so a row the index could not update (a full disk,
  a power cut) is at worst still active, and recovery reads that run's files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("edgebench.agent.runs")

INDEX_FILE = "runs-index.sqlite"
SCHEMA_VERSION = 1


class IndexBroken(Exception):
    """The index file is not a usable database: rebuild it."""


class RunIndex:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.rebuilt = False  # True when open() started from an empty index

    # -- open / rebuild ------------------------------------------------------
    def open(self) -> None:
        """Open the index, or start an empty one when it is missing or corrupt
        (``rebuilt`` says so: the caller fills it from the run directories)."""
        existed = self.path.exists()
        try:
            self._connect()
            self.rebuilt = not existed
        except sqlite3.DatabaseError as exc:
            log.warning("run index %s unusable (%s): rebuilding it from the run directories", self.path, exc)
            self.close()
            self._remove_files()
            self._connect()
            self.rebuilt = True

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            # a cache: WAL with NORMAL sync loses at most the newest updates on a
            # power cut, which leaves a run active (older) and recovery re-reads it
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {version}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, created REAL NOT NULL,"
                " kind TEXT, status TEXT NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS runs_newest ON runs (created DESC, run_id DESC)")
            db.execute("CREATE INDEX IF NOT EXISTS runs_status ON runs (status)")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("SELECT count(*) FROM runs").fetchone()
        except BaseException:
            db.close()
            raise
        self._db = db

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(self.path) + suffix)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    # -- queries ---------------------------------------------------------------
    def _run(self, sql: str, args: Iterable = ()) -> list[tuple]:
        """One statement under the lock. A corrupt file raises IndexBroken; a
        full disk or an I/O error (OperationalError) is raised as is."""
        with self._lock:
            if self._db is None:
                raise IndexBroken("the index is closed")
            try:
                return self._db.execute(sql, tuple(args)).fetchall()
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError as exc:
                raise IndexBroken(str(exc)) from exc

    def ids(self) -> set[str]:
        return {r[0] for r in self._run("SELECT run_id FROM runs")}

    def upsert(self, run_id: str, created: float, kind: str | None, status: str) -> None:
        self._run(
            "INSERT INTO runs (run_id, created, kind, status) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(run_id) DO UPDATE SET status = excluded.status",
            (run_id, created, kind, status),
        )

    def upsert_many(self, rows: list[tuple[str, float, str | None, str]]) -> None:
        with self._lock:
            if self._db is None:
                raise IndexBroken("the index is closed")
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO runs (run_id, created, kind, status) VALUES (?, ?, ?, ?)", rows
                )
                self._db.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise

    def set_status(self, run_id: str, status: str) -> None:
        self._run("UPDATE runs SET status = ? WHERE run_id = ?", (status, run_id))

    def delete(self, run_ids: Iterable[str]) -> None:
        for run_id in run_ids:
            self._run("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def with_status(self, statuses: Iterable[str]) -> list[str]:
        statuses = list(statuses)
        marks = ",".join("?" * len(statuses))
        return [r[0] for r in self._run(f"SELECT run_id FROM runs WHERE status IN ({marks})", statuses)]

    def created(self, run_id: str) -> float | None:
        rows = self._run("SELECT created FROM runs WHERE run_id = ?", (run_id,))
        return rows[0][0] if rows else None

    def page(self, limit: int, before: tuple[float, str] | None = None) -> list[tuple[str, float]]:
        """Up to ``limit`` (run_id, created), newest first, older than ``before``."""
        if before is None:
            sql, args = "SELECT run_id, created FROM runs", ()
        else:
            sql, args = "SELECT run_id, created FROM runs WHERE (created, run_id) < (?, ?)", before
        return self._run(sql + " ORDER BY created DESC, run_id DESC LIMIT ?", (*args, limit))
