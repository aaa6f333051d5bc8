"""A soak watcher's cursor: the last event seq and the windows shown, kept per
run on disk, so ``edgebench soak --attach RUN_ID`` resumes after the last
window it had and shows each window exactly once across attachments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent import atomic
from controller.paths import data_dir


def cursor_dir() -> Path:
    """$EDGEBENCH_HOME/watch, else the user data dir's watch/."""
    return data_dir() / "watch"


class Cursor:
    def __init__(self, run_id: str, directory: Path | None = None) -> None:
        self.path = (directory or cursor_dir()) / f"{run_id}.json"
        self.run_id = run_id
        self.last_seq = 0
        self.windows: list[dict[str, Any]] = []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.last_seq = int(data.get("last_seq") or 0)
            self.windows = list(data.get("windows") or [])
        except (OSError, ValueError):
            pass

    def advance(self, seq: int, window: dict[str, Any] | None = None) -> bool:
        """Record event ``seq``; False when it was already seen (never show it twice)."""
        if seq <= self.last_seq:
            return False
        self.last_seq = seq
        if window is not None:
            self.windows.append(window)
            self.save()  # a window shown is a window remembered
        return True

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(
            self.path, {"run_id": self.run_id, "last_seq": self.last_seq, "windows": self.windows}
        )

    def drop(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
