"""A loopback TCP server for meters reached over the network (a ser2net host,
an RFC 2217 server): each accepted connection is handed to ``handle()`` in
its own thread, numbered from 1."""

from __future__ import annotations

import socket
import threading


class LoopbackServer:
    def __init__(self) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name=type(self).__name__)
        self._thread.start()

    def handle(self, conn: socket.socket, n: int) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        self.srv.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                conn, _ = self.srv.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn, self.connections), daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)
        self.srv.close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
