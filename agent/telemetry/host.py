"""Host figures through psutil: CPU utilisation, memory in use and the agent's
own RSS (the agent must stay light; this is how it watches itself).

psutil parses /proc text on each call (about half of a cold 10 Hz sample's
CPU time), and these figures move slowly, so they are refreshed at most once
per ``min_interval_s``; samples in between repeat the last values. CPU
utilisation is then the average over that interval, which is also steadier.
"""

from __future__ import annotations

import time
from typing import Any

import psutil


class HostSource:
    name = "psutil"

    def __init__(self, min_interval_s: float = 1.0) -> None:
        self._proc = psutil.Process()
        self.min_interval_s = min_interval_s
        self._last: dict[str, Any] | None = None
        self._last_t = 0.0
        psutil.cpu_percent(interval=None)  # primes the delta; the first call returns 0.0

    def read(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._last is None or now - self._last_t >= self.min_interval_s:
            self._last = {
                "cpu_util": psutil.cpu_percent(interval=None) / 100.0,
                "mem_used_bytes": int(psutil.virtual_memory().used),
                "agent_rss_bytes": int(self._proc.memory_info().rss),
            }
            self._last_t = now
        return dict(self._last)

    def close(self) -> None:
        pass
