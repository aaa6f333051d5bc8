"""One run at a time on this machine for embedded agents: a board is one shared
resource, and two controllers' embedded agents would measure at once on the
same CPU (each had its own state dir, so neither queued behind the other).

An flock on DATA/board.lock, taken by the session for each run and released
when the run ends (the kernel drops it if the process dies). A second caller
waits, saying so once, for at most ``max_wait_s``."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable

from agent.errors import BadInput
from controller.paths import data_dir

MAX_WAIT_S = 4 * 3600.0  # longer than a soak someone else started; then a clear refusal
_POLL_S = 0.2


class BoardLock:
    def __init__(self, say: Callable[[str], None] | None = None, max_wait_s: float = MAX_WAIT_S) -> None:
        self.path = data_dir() / "board.lock"
        self.say = say
        self.max_wait_s = max_wait_s
        self._fd: int | None = None

    def __enter__(self) -> BoardLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.max_wait_s
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise BadInput(
                        f"another edgebench run holds this machine ({self.path}, pid {self._holder()}) "
                        f"after {self.max_wait_s:g} s; wait for it, or run on an agent with --agent"
                    ) from None
                if not said and self.say is not None:
                    self.say(
                        f"waiting for another edgebench run on this machine (pid {self._holder()}) to end"
                    )
                said = True
                time.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"
