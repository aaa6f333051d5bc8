"""What bounds a run: its hard wall-clock limit (derived from its spec, capped
by ``serve --max-run-s``), the grace a worker gets between SIGTERM and
SIGKILL, the reserve of free space a run needs to start (``--min-free``) and
the queue's bound (``--max-queued``). Issue 13: a worker stuck in a native
call, or a bench whose ``min_iterations`` never comes, held the board for good.
"""

from __future__ import annotations

import logging
import math
import shutil
import zipfile
from pathlib import Path

from agent.spec import RunSpec

log = logging.getLogger("edgebench.agent.runs")

DEFAULT_MAX_RUN_S = 24 * 3600.0  # serve --max-run-s: a day; a longer soak names a longer cap
DEFAULT_MIN_FREE = 64 << 20  # serve --min-free: a run's files, the journal, the index
DEFAULT_MAX_QUEUED = 64  # serve --max-queued
CANCEL_GRACE_S = 3.0  # SIGTERM, then SIGKILL this long after

# the derived limit: generous, since killing a healthy run is worse than a late kill
LOAD_S = 600.0  # model load: a TensorRT engine, a VX graph compiled on the first run
PLACEMENT_S = 120.0  # the placement pass (profiling runs, node listing)
MARGIN_S = 60.0  # process start, teardown, result assembly
SLACK = 1.5  # min_iterations and slow iterations stretch a timed phase past its length
VALIDATE_SAMPLE_S = 10.0  # one validate sample: an inference and its metrics


def run_limit_s(spec: RunSpec, samples: int | None, max_run_s: float) -> float:
    """The hard wall-clock limit of a run from its worker's start, in seconds:
    load + the timed phases (warm-up + duration; a soak's cold-start wait; a
    validate's samples) with slack + placement + a margin, capped at
    ``max_run_s``. A validate whose sample count is unknown gets the cap."""
    if spec.kind == "validate":
        if not samples:
            return max_run_s
        timed = samples * VALIDATE_SAMPLE_S
    else:
        timed = spec.warmup_s + spec.duration_s
    if spec.kind == "soak" and spec.soak is not None and spec.soak.start_cold:
        timed += spec.soak.start_cold_max_s
    derived = LOAD_S + SLACK * timed + MARGIN_S + (PLACEMENT_S if spec.placement else 0.0)
    return min(derived, max_run_s) if math.isfinite(derived) else max_run_s


def npz_samples(path: Path | None) -> int | None:
    """The sample count of an .npz (the first axis of its first array), read
    from the array header alone; None when it cannot be read."""
    if path is None:
        return None
    import numpy as np  # here, not at import: an idle agent carries no numpy

    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not name.endswith(".npy"):
                    continue
                with z.open(name) as f:
                    major, _ = np.lib.format.read_magic(f)
                    fmt = np.lib.format
                    read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
                    shape, _, _ = read(f)
                return int(shape[0]) if shape else 1
    except Exception as exc:  # a bad .npz fails in the worker, with its own message
        log.debug("cannot count the samples of %s: %s", path, exc)
    return None


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def mib(n: float) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n / 1024:.0f} KiB"
