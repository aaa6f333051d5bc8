"""The pseudo-terminal every emulator speaks through. The emulator holds the
master side; the code under test opens the slave path (/dev/pts/N) exactly as
it would open a USB serial adapter. Closing the master is an unplug: the
slave's reads then fail with EIO."""

from __future__ import annotations

import errno
import os
import threading
import time
import tty


class PtyDevice:
    """Master end of a pty with a bounded device FIFO: when the reader falls
    behind, new data is dropped whole (like a meter's FIFO overflowing)."""

    def __init__(self, fifo_bytes: int = 1 << 20) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF mangling of binary data
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self._slave)
        self.fifo_bytes = fifo_bytes
        self._pending = bytearray()
        self.overflow_units = 0  # whole samples/lines dropped at the "device"
        self.closed = False
        self._lock = threading.Lock()

    def push(self, data: bytes, units: int = 1) -> bool:
        """Queue one unit (a sample block or a line); False if the FIFO is full."""
        if len(self._pending) + len(data) > self.fifo_bytes:
            self.overflow_units += units
            return False
        self._pending += data
        return True

    def flush(self) -> None:
        """Write what the pty takes now; keep the rest (partial writes stay in order)."""
        while self._pending and not self.closed:
            try:
                n = os.write(self.master, self._pending)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EIO):
                    return
                raise
            del self._pending[:n]

    def read(self, n: int = 4096) -> bytes:
        if self.closed:
            return b""
        try:
            return os.read(self.master, n)
        except (BlockingIOError, OSError):
            return b""

    def unplug(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                os.close(self.master)

    def close(self) -> None:
        self.unplug()
        try:
            os.close(self._slave)
        except OSError:
            pass


class EmulatorThread:
    """Runs ``step()`` about every ``tick_s`` in a daemon thread until stopped or unplugged."""

    tick_s = 0.001

    def __init__(self, fifo_bytes: int = 1 << 20) -> None:
        self.dev = PtyDevice(fifo_bytes)
        self.port = self.dev.port
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.disconnect_at_s: float | None = None
        self.t0_ns: int | None = None  # monotonic time of sample 0 (set when streaming starts)

    def step(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set() and not self.dev.closed:
            if (
                self.disconnect_at_s is not None
                and self.t0_ns is not None
                and time.monotonic_ns() - self.t0_ns >= self.disconnect_at_s * 1e9
            ):
                self.dev.unplug()
                break
            self.step()
            self.dev.flush()
            time.sleep(self.tick_s)  # the device's own pace: the behaviour, not a wait

    def start(self) -> EmulatorThread:
        self._thread = threading.Thread(target=self._loop, daemon=True, name=type(self).__name__)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.dev.close()

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
