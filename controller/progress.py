"""Live progress of a run from its WatchRun events: a rich progress bar
(elapsed/remaining, current throughput) on a TTY, plain lines otherwise, and
on a TTY too when rich (the ``[controller]`` extra) is not installed."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from controller import extras


class Progress:
    def __init__(self, total_s: float, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        # a board-only install has no rich: the plain lines serve a TTY as well
        self.rich = self.tty and extras.have("rich")
        self.total_s = max(total_s, 0.001)
        self._bar: Any = None
        self._task: Any = None
        self._last_line = -1.0

    def __enter__(self) -> Progress:
        if self.rich:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[ips]}"),
                console=Console(file=self.stream),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("load", total=self.total_s, ips="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def event(self, ev: dict) -> None:
        kind, p = ev.get("kind"), ev.get("payload") or {}
        if kind == "phase":
            self._say(f"phase {p.get('phase')}", desc=str(p.get("phase")))
        elif kind == "progress":
            ips = p.get("throughput_ips")
            el = float(p.get("elapsed_s") or 0.0)
            tgt = float(p.get("target_s") or self.total_s)
            text = f"{ips:.1f} inf/s" if isinstance(ips, (int, float)) else ""
            if self._bar is not None:
                self._bar.update(self._task, completed=min(el, tgt), total=tgt, ips=text)
            elif el - self._last_line >= 1.0 or el >= tgt:
                self._last_line = el
                print(
                    f"  {el:6.1f}/{tgt:.0f} s  {p.get('iterations', 0)} it  {text}",
                    file=self.stream,
                    flush=True,
                )
        elif kind == "state":
            self._say(f"status {p.get('status')}")

    def _say(self, line: str, desc: str | None = None) -> None:
        if self._bar is not None:
            if desc:
                self._bar.update(self._task, description=desc)
        else:
            print(line, file=self.stream, flush=True)
