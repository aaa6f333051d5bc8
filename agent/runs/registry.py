"""The run registry: one directory per run under ``STATE/runs/<run_id>/``
(layout in docs/internals.md). Run ids sort by creation time: a UTC timestamp
with milliseconds, then random hex so two agents never collide.

On agent start ``recover()`` turns every run left ``queued``/``running`` by a
dead agent into ``interrupted`` and writes its result.json from whatever the
journal holds.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.runs import files

# a run's status in state.json
ACTIVE = ("queued", "running")
FINAL = ("completed", "failed", "cancelled", "interrupted")

_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$")


def new_run_id(t_unix: float | None = None) -> str:
    t = time.time() if t_unix is None else t_unix
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))
    return f"{stamp}{int(t * 1000) % 1000:03d}Z-{secrets.token_hex(3)}"


def valid_run_id(run_id: str) -> bool:
    return bool(_RUN_ID.match(run_id or ""))


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


class RunDir:
    """One run's directory and its small state file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.run_id = self.path.name

    @property
    def journal_path(self) -> Path:
        return self.path / files.JOURNAL

    def spec(self) -> dict:
        return _read_json(self.path / files.SPEC) or {}

    def state(self) -> dict:
        return _read_json(self.path / files.STATE) or {"status": "interrupted"}

    def update_state(self, **changes: Any) -> dict:
        st = self.state()
        st.update(changes)
        write_json_atomic(self.path / files.STATE, st)
        return st

    def result(self) -> dict | None:
        return _read_json(self.path / files.RESULT)

    def write_result(self, doc: dict) -> None:
        write_json_atomic(self.path / files.RESULT, doc)

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
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir) / "runs"
        self.root.mkdir(parents=True, exist_ok=True)

    def create(self, spec_dict: dict) -> RunDir:
        now = time.time()
        run_id = new_run_id(now)
        path = self.root / run_id
        path.mkdir()
        rd = RunDir(path)
        write_json_atomic(path / files.SPEC, spec_dict)
        write_json_atomic(
            path / files.STATE,
            {
                "status": "queued",
                "created_unix": now,
                "started_unix": None,
                "ended_unix": None,
                "error": None,
                "error_code": None,
                "pid": None,
            },
        )
        return rd

    def get(self, run_id: str) -> RunDir | None:
        if not valid_run_id(run_id):
            return None
        path = self.root / run_id
        return RunDir(path) if (path / files.SPEC).is_file() else None

    def list(self, limit: int = 0) -> list[RunDir]:
        """Newest first."""
        runs = [RunDir(p) for p in self.root.iterdir() if valid_run_id(p.name) and (p / files.SPEC).is_file()]
        runs.sort(key=lambda r: (r.state().get("created_unix") or 0, r.run_id), reverse=True)
        return runs[:limit] if limit else runs

    def recover(self, partial_result: Callable[[RunDir, str, str], dict]) -> list[str]:
        """Mark runs a dead agent left in flight as interrupted, with the result
        ``partial_result(rd, status, error)`` builds from their journal (agent/runs/
        result.py; passed in so that the registry, which the controller imports for
        FINAL, stays free of the result's analyses); returns their ids."""
        done = []
        for rd in self.list():
            st = rd.state()
            if st.get("status") in ACTIVE:
                error = "interrupted: the agent stopped while this run was " + st["status"]
                rd.update_state(status="interrupted", ended_unix=time.time(), error=error, pid=None)
                rd.write_result(partial_result(rd, "interrupted", error))
                done.append(rd.run_id)
        return done
