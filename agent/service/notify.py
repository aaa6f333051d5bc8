"""systemd's notify protocol, by hand: one datagram per message to the AF_UNIX
socket named in ``$NOTIFY_SOCKET`` (sd_notify(3)); no dependency.

``Watchdog`` pings ``WATCHDOG=1`` at half of ``$WATCHDOG_USEC`` while its
``alive()`` check holds. When the check fails it stops pinging, so systemd's
``WatchdogSec=`` fires and ``Restart=on-failure`` restarts a wedged agent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

log = logging.getLogger("edgebench.agent")


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``WATCHDOG=1``, ``STATUS=...``); False when
    not under systemd or the socket refused it (never raises: a notify
    failure must not take the agent down)."""
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr or addr[0] not in "/@":
        return False  # unset, or a vsock address this agent does not speak
    if addr[0] == "@":
        addr = "\0" + addr[1:]  # the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(1.0)  # a datagram send does not block, but stay bounded
            sock.connect(addr)
            sock.sendall(state.encode())
        return True
    except OSError as exc:
        log.debug("sd_notify %r failed: %s", state, exc)
        return False


def watchdog_interval() -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``), or None when the
    watchdog is off or meant for another process (``$WATCHDOG_PID``)."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class Watchdog:
    """A daemon thread: ``WATCHDOG=1`` every ``interval`` seconds while
    ``alive()`` is true; the first failed check is logged once."""

    def __init__(self, interval: float, alive: Callable[[], bool]) -> None:
        self.interval = float(interval)
        self.alive = alive
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgebench-watchdog", daemon=True)
        self.pings = 0

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 1.0)

    def _run(self) -> None:
        reported = False
        while not self._stop.is_set():
            try:
                ok = self.alive()
            except Exception:  # a check that raises is a failed check
                log.exception("liveness check failed")
                ok = False
            if ok:
                if notify("WATCHDOG=1"):
                    self.pings += 1
                reported = False
            elif not reported:
                reported = True
                log.error("agent wedged (a dispatcher or server thread died): watchdog pings stop")
                notify("STATUS=wedged: a dispatcher or server thread died; waiting for the watchdog")
            self._stop.wait(self.interval)
