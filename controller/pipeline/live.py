"""The live per-stage bars while a pipeline runs: one line every few seconds
from the agent's ``pipeline_stages`` log events (each stage's p50 so far),
each stage a bar scaled to the frame budget (or to the frame), so the stage
that eats the budget shows while the run goes on. Plain text: it sits beside
the progress bar on a terminal and in a CI log alike."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

WIDTH = 12  # characters of a whole frame budget
EVERY_S = 3.0


def line(payload: dict[str, Any]) -> str:
    stages = payload.get("pipeline_stages") or []
    total = sum(v for _, v in stages) or 1.0
    scale = payload.get("budget_ms") or total
    cells = []
    for name, v in stages:
        n = max(0, min(WIDTH, int(round(WIDTH * v / scale))))
        cells.append(f"{name} {v:.1f}ms {'#' * n}")
    return f"  stages @ {payload.get('frames', 0)} frames: " + " | ".join(cells)


class StageBars:
    def __init__(self, stream: TextIO | None = None, every_s: float = EVERY_S) -> None:
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._last = 0.0

    def event(self, ev: dict[str, Any]) -> None:
        p = ev.get("payload") or {}
        if ev.get("kind") != "log" or "pipeline_stages" not in p:
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            print(line(p), file=self.stream, flush=True)
