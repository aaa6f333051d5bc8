"""Other processes that took CPU during a run's measured phase: psutil's CPU
times of every process at the phase's start and end, the agent and its
worker left out. Only meaningful on the live machine: psutil reads this
kernel's /proc, so over a fixture root it still names the host's processes
(the agent runs there too). Without psutil the figure is "unknown".
"""

from __future__ import annotations

import os
import time
from typing import Any

THRESHOLD_PCT = 5.0  # of one CPU: a process above it is named
TOP_N = 10


class Snapshot:
    """CPU seconds per (pid, create time) at one moment."""

    def __init__(self) -> None:
        self.t = time.monotonic()
        self.cpu: dict[tuple[int, float], tuple[float, str]] = {}
        try:
            import psutil
        except ImportError:
            self.available = False
            return
        self.available = True
        for p in psutil.process_iter(["name", "cpu_times", "create_time"]):
            info = p.info
            ct = info.get("cpu_times")
            if ct is None:
                continue
            self.cpu[(p.pid, info.get("create_time") or 0.0)] = (ct.user + ct.system, info.get("name") or "?")


def own_pids(extra: list[int]) -> set[int]:
    """This process, the given pids, and all their descendants."""
    pids = {os.getpid(), *extra}
    try:
        import psutil

        for pid in list(pids):
            try:
                pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))
            except psutil.Error:
                pass
    except ImportError:
        pass
    return pids


def busy_others(start: Snapshot, end: Snapshot, exclude: set[int]) -> dict[str, Any]:
    """``{source, span_s, threshold_pct, top[{pid, name, cpu_pct}]}``: the
    processes above the threshold (percent of one CPU) between two snapshots."""
    if not (start.available and end.available):
        return {"source": None, "status": "unknown (psutil not installed)"}
    span = max(end.t - start.t, 1e-6)
    top = []
    for key, (cpu1, name) in end.cpu.items():
        if key[0] in exclude:
            continue
        cpu0 = start.cpu.get(key, (0.0, name))[0]  # a process born in the span counts from 0
        pct = 100.0 * (cpu1 - cpu0) / span
        if pct > THRESHOLD_PCT:
            top.append({"pid": key[0], "name": name, "cpu_pct": round(pct, 1)})
    top.sort(key=lambda e: -e["cpu_pct"])
    return {"source": "psutil", "span_s": round(span, 3), "threshold_pct": THRESHOLD_PCT, "top": top[:TOP_N]}


def warning(busy: dict[str, Any]) -> str | None:
    """One line naming the top busy processes, or None."""
    top = busy.get("top") or []
    if not top:
        return None
    names = ", ".join(f"{e['name']} ({e['pid']}) {e['cpu_pct']:.0f}%" for e in top[:3])
    more = f" and {len(top) - 3} more" if len(top) > 3 else ""
    return f"other processes above {busy['threshold_pct']:g}% CPU during the measured phase: {names}{more}"
