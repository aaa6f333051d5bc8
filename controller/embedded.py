"""EmbeddedAgent: an in-process agent on loopback, so a user on the board
itself (or `edgebench demo`) needs no daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.paths import data_dir


class EmbeddedAgent:
    def __init__(self, state_dir: str | Path | None = None, **server_kwargs: Any) -> None:
        self.explicit = state_dir is not None
        self.state_dir = Path(state_dir) if state_dir else data_dir() / "agent"
        self.kwargs = server_kwargs
        self.server: Any = None
        self.address = ""
        self._scratch: Path | None = None

    def __enter__(self) -> EmbeddedAgent:
        from agent.errors import BadInput

        self.kwargs.setdefault("listen", "127.0.0.1:0")
        try:
            self._start(self.state_dir)
        except BadInput as exc:
            # another edgebench call holds the default state dir: run this one in a
            # scratch dir (its result still lands in the DB), removed afterwards
            if self.explicit or "in use" not in str(exc):
                raise
            import tempfile

            (data_dir() / "scratch").mkdir(parents=True, exist_ok=True)
            self._scratch = Path(tempfile.mkdtemp(prefix="agent-", dir=data_dir() / "scratch"))
            self.state_dir = self._scratch
            self._start(self.state_dir)
        return self

    def _start(self, state_dir: Path) -> None:
        from agent.server.app import AgentServer

        state_dir.mkdir(parents=True, exist_ok=True)
        server = AgentServer(state_dir, **self.kwargs)
        self.address = server.start()
        self.server = server

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop(0)
            self.server = None
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
