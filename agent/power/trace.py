"""A run's meter samples on the agent's clock: power.bin read through
``agent.rundir`` and each segment's clock fit applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent import rundir
from agent.power.clockfit import ClockFit


def load_trace(run_dir: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    """(meta, t_ns host monotonic int64, current_a float64, bus_v float64 with NaN):
    the meter's samples on the agent's clock, through each segment's clock fit."""
    meta, rec = rundir.load_power(run_dir)
    t = np.empty(rec.shape[0], dtype=np.int64)
    if meta.get("host_clock"):
        t[:] = rec["t_dev_ns"]
    else:
        for seg in meta.get("segments", []):
            a, n = int(seg["first"]), int(seg["count"])
            t[a : a + n] = ClockFit.from_dict(seg["clock_fit"]).apply(rec["t_dev_ns"][a : a + n])
    return meta, t, np.asarray(rec["current_a"], dtype=np.float64), np.asarray(rec["bus_v"], dtype=np.float64)
