"""The one owner of a run directory's file names and of the readers of its
data files, and of the append-only ``.npy`` writer of ``iterations.npy`` and
``arrivals.npy`` (``IterationLog``). Other writers live with what produces the
data (the telemetry sampler, the power capture, the journal) and take their
names from here; everything that reads a run's files,
on the agent or on the controller after ``fetch``, reads them through here.

A run directory (``STATE/runs/<run_id>/``; docs/internals.md):

| name | written by | what |
| --- | --- | --- |
| ``spec.json`` / ``state.json`` / ``result.json`` | registry, atomically | the run's spec, status, result |
| ``journal.jsonl`` | ``agent/runs/journal.py`` | every event, fsynced, seq-numbered |
| ``iterations.npy`` | ``agent/load/loop.py`` (via ``IterationLog``) | int64 N x 3 (start_ns, end_ns, phase) |
| ``arrivals.npy`` | ``agent/load/paced.py`` | load pattern: int64 N x 4 (arrival, start, end, burst) |
| ``telemetry.jsonl`` | ``agent/telemetry/sampler.py`` | one sample per line |
| ``power.bin`` / ``power.json`` | ``agent/power/capture.py`` | meter samples, clock fits |
| ``placement.json`` | the worker | the placement record |
| ``outputs.npz`` | ``agent/validate/run.py`` | validate --keep-outputs: the device's outputs |
| ``boxes.npz`` | ``agent/validate/boxfile.py`` | validate --boxes: the device's decoded boxes |
| ``stderr.log`` | the worker's fds 1/2 | runtime and delegate logs |
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# numpy is imported by each reader, not here: the registry names files through
# this module, and an idle agent should not carry numpy (docs/internals.md)

SPEC = "spec.json"
STATE = "state.json"
RESULT = "result.json"
JOURNAL = "journal.jsonl"
ITERATIONS = "iterations.npy"
# a load pattern's frames: (arrival_ns, start_ns, end_ns, burst); a dropped
# frame has start = end = -1, a frame outside any duty cycle burst = -1
ARRIVALS = "arrivals.npy"
TELEMETRY = "telemetry.jsonl"
POWER_BIN = "power.bin"
POWER_JSON = "power.json"
PLACEMENT = "placement.json"
OUTPUTS = "outputs.npz"  # validate --keep-outputs: the device's outputs, one array per output
BOXES = "boxes.npz"  # validate --boxes: each box output's detections (agent/validate/boxfile.py)
STDERR = "stderr.log"

# iterations.npy's phase column
WARMUP, MEASURED = 0, 1

# the files the HTML report draws from: what `fetch` brings home for it
PLOT_FILES = (TELEMETRY, ITERATIONS, ARRIVALS, POWER_BIN, POWER_JSON)


# -- iterations.npy ------------------------------------------------------------
def load_iterations(run_dir: Path) -> np.ndarray:
    """Every row (start_ns, end_ns, phase), sorted by start; empty when the run
    has none (a placement-only run, or one that failed before its first)."""
    import numpy as np

    path = Path(run_dir) / ITERATIONS
    try:
        it = np.load(path)
    except (OSError, ValueError, EOFError):  # EOFError: an empty file (a full disk, a kill)
        return np.empty((0, 3), dtype=np.int64)
    it = np.asarray(it, dtype=np.int64).reshape(-1, 3)
    return it[np.argsort(it[:, 0], kind="stable")] if it.shape[0] else it


def measured_rows(it: np.ndarray) -> np.ndarray:
    """The measured phase's rows; all rows when none is marked measured (a run
    cut short in warm-up still has inferences to align power with)."""
    import numpy as np

    it = np.asarray(it, dtype=np.int64).reshape(-1, 3)
    m = it[it[:, 2] == MEASURED]
    return m if m.shape[0] else it


def measured_span_ns(it: np.ndarray) -> tuple[int, int] | None:
    """(first start, last end) of the measured rows; None without rows."""

    m = measured_rows(it)
    if not m.shape[0]:
        return None
    return int(m[:, 0].min()), int(m[:, 1].max())


# the writer of both: an append-only int64 .npy whose fixed header is
# rewritten at each append, so a killed run leaves a readable file
_HEADER_LEN = 128  # fixed .npy v1 header so the row count can be rewritten in place


class IterationLog:
    """Append-only int64 ``.npy`` writer (``iterations.npy``; ``arrivals.npy``
    has 4 columns)."""

    def __init__(self, path: Path, cols: int = 3) -> None:
        self.path = path
        self.cols = cols
        self.rows = 0
        self.f = open(path, "wb")
        self._header()

    def _header(self) -> None:
        d = "{'descr': '<i8', 'fortran_order': False, 'shape': (" + str(self.rows) + f", {self.cols}), }}"
        body = d.ljust(_HEADER_LEN - 10 - 1) + "\n"
        self.f.seek(0)
        self.f.write(b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1"))

    def append(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        self.f.seek(0, 2)
        import numpy as np

        self.f.write(np.ascontiguousarray(rows, dtype="<i8").tobytes())
        self.rows += len(rows)
        self._header()
        self.f.flush()

    def close(self) -> None:
        if not self.f.closed:
            self._header()
            self.f.close()


# -- arrivals.npy ---------------------------------------------------------------
def load_arrivals(run_dir: Path) -> np.ndarray:
    """A load pattern's frames (arrival_ns, start_ns, end_ns, burst) in arrival
    order; empty for a back-to-back run (no such file)."""
    import numpy as np

    try:
        a = np.load(Path(run_dir) / ARRIVALS, mmap_mode="r")
    except (OSError, ValueError):
        return np.empty((0, 4), dtype=np.int64)
    return np.asarray(a, dtype=np.int64).reshape(-1, 4)


# -- telemetry.jsonl -----------------------------------------------------------
def iter_telemetry(path: Path) -> Iterator[dict[str, Any]]:
    """telemetry.jsonl samples; a torn last line (agent killed) is skipped."""
    try:
        f = open(path, encoding="utf-8")
    except OSError:
        return
    with f:
        for line in f:
            try:
                s = json.loads(line)
            except ValueError:
                continue
            if isinstance(s, dict) and isinstance(s.get("t_ns"), int):
                yield s


def load_telemetry(run_dir: Path) -> list[dict[str, Any]]:
    return list(iter_telemetry(Path(run_dir) / TELEMETRY))


# -- power.bin / power.json ----------------------------------------------------
# power.bin's record layout as numpy dtype fields: 16 bytes a sample, the
# meter's clock (power/base.py builds SAMPLE_DTYPE from it; power/trace.py
# reads the samples onto the agent's clock)
SAMPLE_FIELDS = (("t_dev_ns", "<i8"), ("current_a", "<f4"), ("bus_v", "<f4"))


def load_power(run_dir: Path) -> tuple[dict[str, Any], np.ndarray]:
    """(power.json, power.bin's records, memory-mapped)."""
    import numpy as np

    run_dir = Path(run_dir)
    meta = json.loads((run_dir / POWER_JSON).read_text())
    # power.json names its record layout; SAMPLE_FIELDS is what capture writes today
    dtype = np.dtype([(n, t) for n, t in (meta.get("dtype") or SAMPLE_FIELDS)])
    path = run_dir / POWER_BIN
    n = path.stat().st_size // dtype.itemsize if path.exists() else 0
    if n == 0:
        return meta, np.empty(0, dtype=dtype)
    return meta, np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def has_power(run_dir: Path) -> bool:
    return (Path(run_dir) / POWER_BIN).is_file() and (Path(run_dir) / POWER_JSON).is_file()


# -- stderr.log ----------------------------------------------------------------
def stderr_tail(path: Path, lines: int = 3, max_bytes: int = 8192) -> str:
    """The last non-empty lines of a worker's stderr.log, joined on one line."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    tail = [ln.strip() for ln in data.splitlines() if ln.strip()]
    return " | ".join(tail[-lines:])
