"""Where things live under the agent's state dir. Tiny (no imports beyond the
errors) so the worker process can find its artifacts without loading the store."""

from __future__ import annotations

import os
from pathlib import Path

from agent.errors import BadInput


def artifact_path(state_dir: str | os.PathLike[str], sha256: str) -> Path:
    """``STATE/artifacts/<sha[:2]>/<sha>`` (it may not exist)."""
    return Path(state_dir) / "artifacts" / sha256[:2] / sha256


def state_dir_of(run_dir: str | os.PathLike[str]) -> Path:
    """A run directory is ``STATE/runs/<run_id>``."""
    return Path(run_dir).resolve().parent.parent


def locate_artifact(run_dir: str | os.PathLike[str], sha256: str, what: str) -> Path:
    """A worker's artifact (model, inputs, reference), from its run directory."""
    path = artifact_path(state_dir_of(run_dir), sha256)
    if not path.is_file():
        raise BadInput(f"{what} artifact {sha256[:12]} is not in the agent's store; push it first")
    return path
