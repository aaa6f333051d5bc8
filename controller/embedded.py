"""EmbeddedAgent: an in-process agent on loopback, so a user on the board
itself (or `edgebench demo`) needs no daemon."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def data_dir() -> Path:
    """$EDGEBENCH_HOME, else the platformdirs user data dir."""
    env = os.environ.get("EDGEBENCH_HOME")
    if env:
        return Path(env)
    try:
        import platformdirs

        return Path(platformdirs.user_data_dir("edgebench"))
    except ImportError:
        return Path.home() / ".local" / "share" / "edgebench"


class EmbeddedAgent:
    def __init__(self, state_dir: str | Path | None = None, **server_kwargs: Any) -> None:
        self.state_dir = Path(state_dir) if state_dir else data_dir() / "agent"
        self.kwargs = server_kwargs
        self.server: Any = None
        self.address = ""

    def __enter__(self) -> EmbeddedAgent:
        from agent.server.app import AgentServer

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.kwargs.setdefault("listen", "127.0.0.1:0")
        self.server = AgentServer(self.state_dir, **self.kwargs)
        self.address = self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop(0)
            self.server = None
