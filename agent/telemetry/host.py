"""Host figures through psutil: CPU utilisation, memory in use and the agent's
own RSS (the agent must stay light; this is how it watches itself)."""

from __future__ import annotations

from typing import Any

import psutil


class HostSource:
    name = "psutil"

    def __init__(self) -> None:
        self._proc = psutil.Process()
        psutil.cpu_percent(interval=None)  # primes the delta; the first call returns 0.0

    def read(self) -> dict[str, Any]:
        return {
            "cpu_util": psutil.cpu_percent(interval=None) / 100.0,
            "mem_used_bytes": int(psutil.virtual_memory().used),
            "agent_rss_bytes": int(self._proc.memory_info().rss),
        }

    def close(self) -> None:
        pass
