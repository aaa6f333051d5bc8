"""The plan's live view: a rich table (board, job, phase, progress, last
figure, items done) redrawn on a TTY; off a TTY, one plain line per phase
change or finished item, so a CI log reads in order."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO


class Live:
    def __init__(self, boards: list[str], stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.rows: dict[str, dict] = {b: {"board": b, "phase": "waiting"} for b in boards}
        self._live: Any = None
        self._lock = threading.Lock()
        self._said: dict[str, tuple] = {}

    def __enter__(self) -> Live:
        if self.tty:
            from rich.console import Console
            from rich.live import Live as RichLive

            self._live = RichLive(self._table(), console=Console(file=self.stream), refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)

    def event(self, board: str, state: dict) -> None:
        """Called from the board threads with the board's whole state."""
        with self._lock:
            self.rows[board] = state
            if self._live is not None:
                self._live.update(self._table())
                return
            # plain lines: a new phase, or a finished item (history grows)
            sig = (state.get("job"), state.get("model"), state.get("phase"), len(state.get("history") or []))
            if self._said.get(board) == sig:
                return
            self._said[board] = sig
            hist = state.get("history") or []
            if hist and len(hist) > self._said.get(board + "#", (0,))[0]:
                self._said[board + "#"] = (len(hist),)
                line = f"{board}: {hist[-1]}" + (f"  {state['figure']}" if state.get("figure") else "")
            else:
                line = f"{board}: {state.get('job', '')} {state.get('model', '')} {state.get('phase', '')}"
            print(line, file=self.stream, flush=True)

    def _table(self) -> Any:
        from rich.table import Table

        t = Table(title="fleet", expand=False)
        for col in ("board", "job", "model", "phase", "progress", "last figure", "done"):
            t.add_column(col)
        for b in sorted(self.rows):
            r = self.rows[b]
            prog = r.get("progress")
            t.add_row(
                b,
                r.get("job", ""),
                r.get("model", ""),
                r.get("phase", ""),
                f"{prog * 100:3.0f}%" if isinstance(prog, float) else "",
                r.get("figure", ""),
                f"{r.get('done', 0)}/{r.get('total', 0)}",
            )
        return t
