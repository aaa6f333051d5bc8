"""A loopback RFC 2217 server (a ser2net/ESP-Link "telnet COM port") in
front of a local serial port, e.g. an emulator's /dev/pts/N. The client
(pyserial's ``rfc2217://`` URL handler) negotiates Telnet options, sets the
baud rate and control lines through RFC 2217 sub-negotiation; pyserial's
``serial.rfc2217.PortManager`` answers those and un-escapes/escapes the data
stream (IAC doubling), and this module only moves bytes.

A pty has no modem lines (TIOCMGET/TIOCMBIS fail with ENOTTY), so the port
is wrapped as a 3-wire adapter: CTS/DSR/RI/CD read low, DTR/RTS/break
requests are taken and dropped. ``settings`` records what the client asked
for (``baudrate`` ...), so a test can prove the RFC 2217 path was used.

A PURGE (the client's ``reset_input_buffer()``, sent at open and at run
start) flushes the port under the same lock as the pump's read-and-send, as
ser2net does both in one event loop. Without it a flush that lands between
the pump's ``select`` and its ``read`` leaves pyserial's posix ``read()``
with "ready but no data" (VMIN=0: a flushed tty reads 0 bytes, not EAGAIN),
which it reports as a disconnected device: the pump quit, the server dropped
the client, and the client's purge waited out its 3 s for an answer that
never came (or the meter was lost mid-run). The lock also keeps a real
server's order: bytes read before the flush reach the client before the
PURGE answer, so the client's own queue clearing drops them.

``purge_answers=n`` answers only the first n PURGE requests (pyserial's
open() sends two) and ignores later ones, like a server too slow to answer
before the client's network timeout; ``purges`` counts the requests.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import serial
import serial.rfc2217

from .tcp import LoopbackServer


class _ThreeWire:
    """The serial port as PortManager sees it: settings pass through (and are
    recorded); modem and control lines do not exist."""

    cts = dsr = ri = cd = False

    def __init__(self, ser: serial.Serial, settings: dict[str, Any], io: threading.Lock) -> None:
        object.__setattr__(self, "_ser", ser)
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "_io", io)

    # PortManager purges from the socket thread while the pump reads: see the module doc
    def reset_input_buffer(self) -> None:
        with self._io:
            self._ser.reset_input_buffer()

    def reset_output_buffer(self) -> None:
        with self._io:
            self._ser.reset_output_buffer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ser, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._settings[name] = value
        if name not in ("dtr", "rts", "break_condition"):
            setattr(self._ser, name, value)


class _Conn:
    """PortManager's ``connection``: a thread-safe write to the client."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass  # the client went away; the serving loop notices


class _Manager(serial.rfc2217.PortManager):
    """PortManager that can leave PURGE requests unanswered (``purge_answers``)."""

    def __init__(self, port: _ThreeWire, conn: _Conn, server: Rfc2217Server) -> None:
        self._server = server
        super().__init__(port, conn)

    def rfc2217_send_subnegotiation(self, option: bytes, value: bytes = b"") -> None:
        if option == serial.rfc2217.SERVER_PURGE_DATA:
            srv = self._server
            srv.purges += 1
            if srv.purge_answers is not None and srv.purges > srv.purge_answers:
                return  # flushed, but the answer never reaches the client
        super().rfc2217_send_subnegotiation(option, value)


class Rfc2217Server(LoopbackServer):
    """Serve ``device`` on 127.0.0.1 (any free port); ``url`` is what a client opens."""

    def __init__(self, device: str, purge_answers: int | None = None) -> None:
        self.device = device
        self.settings: dict[str, Any] = {}
        self.bytes_to_client = 0
        self.purge_answers = purge_answers
        self.purges = 0
        super().__init__()
        self.url = f"rfc2217://127.0.0.1:{self.port}"

    def handle(self, sock: socket.socket, n: int) -> None:
        ser = serial.serial_for_url(self.device, timeout=0.01)
        conn = _Conn(sock)
        io = threading.Lock()  # the pump's read-and-send vs. a PURGE's flush
        manager = _Manager(_ThreeWire(ser, self.settings, io), conn, self)
        done = threading.Event()

        def device_to_client() -> None:
            while not done.is_set() and not self.stopping.is_set():
                with io:
                    try:
                        data = ser.read(ser.in_waiting or 1)
                    except (serial.SerialException, OSError):
                        break  # the emulator unplugged
                    if data:
                        conn.write(b"".join(manager.escape(data)))
                        self.bytes_to_client += len(data)
            done.set()

        pump = threading.Thread(target=device_to_client, daemon=True)
        pump.start()
        sock.settimeout(0.1)
        try:
            while not done.is_set() and not self.stopping.is_set():
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                out = b"".join(manager.filter(data))  # answers negotiation, applies settings
                if out:
                    ser.write(out)
        finally:
            done.set()
            pump.join(timeout=2)
            ser.close()
            sock.close()
