"""Where the controller keeps its files: the results DB, the embedded agent's
state, soak watch cursors, the sha256 cache. All under one data directory."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """$EDGEBENCH_HOME, else the platformdirs user data dir."""
    env = os.environ.get("EDGEBENCH_HOME")
    if env:
        return Path(env)
    try:
        import platformdirs
    except ImportError:  # third-party, from the [controller] extra: an agent-only install lacks it
        return Path.home() / ".local" / "share" / "edgebench"
    return Path(platformdirs.user_data_dir("edgebench"))
