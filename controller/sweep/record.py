"""The sweep record: what makes a sweep resumable with no point run twice.
One JSON file per sweep, ``<data_dir>/sweeps/<sweep_id>.json``, written
atomically after every change: each point's values, its run id as soon as
the run starts, and its figures once its result is stored. Running the same
sweep again (same model, axes and options: the same id) skips the points
done, follows a point whose run had started, and runs only the rest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agent.atomic import replacing
from controller.paths import data_dir

SCHEMA = "edgebench.sweep/v1"


def sweep_id(model_sha: str, axes: dict[str, list[Any]], base: dict[str, Any]) -> str:
    """The same model, axes and base options: the same sweep."""
    blob = json.dumps([model_sha, axes, base], sort_keys=True, default=str)
    return "sw-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


class Record:
    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path = path
        self.doc = doc

    @classmethod
    def open(cls, sid: str, model: str, axes: dict[str, list[Any]], points: list[dict[str, Any]]) -> Record:
        path = data_dir() / "sweeps" / f"{sid}.json"
        if path.is_file():
            doc = json.loads(path.read_text())
            if [p["point"] for p in doc.get("points", [])] == points:
                return cls(path, doc)
        doc = {
            "schema": SCHEMA,
            "sweep_id": sid,
            "model": model,
            "axes": axes,
            "points": [{"point": p, "run_id": None, "done": False} for p in points],
        }
        rec = cls(path, doc)
        rec.save()
        return rec

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.doc["points"]

    def started(self, i: int, run_id: str) -> None:
        self.entries[i].update(run_id=run_id, done=False)
        self.save()

    def finished(self, i: int, figures: dict[str, Any]) -> None:
        self.entries[i].update(done=True, figures=figures)
        self.save()

    def forget(self, i: int) -> None:
        """A started run the agent no longer has: the point runs again."""
        self.entries[i].update(run_id=None, done=False)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(self.path) as f:
            json.dump(self.doc, f, indent=1)
