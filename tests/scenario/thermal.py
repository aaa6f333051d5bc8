"""A board that throttles for real, for soak tests.

``ThermalBoard`` rewrites the temperature and clock files of a fixture sysfs
tree over time, following a first-order thermal model: each zone approaches
``ambient + rise * gain(zone) * power`` with time constant ``tau_s``. At a
known moment it drops one clock domain (the kernel's thermal governor would)
and, through ``CpuContention``, really slows the inference: busy processes
pinned to the same core as the worker take their share of it.

Files are rewritten in place (pwrite + ftruncate), never replaced: the agent's
sysfs reader keeps value files open and re-reads them at offset 0, as it does
on a real board.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# how much of the heat each zone sees (tj is the hottest point of the die)
# (zone types of both L4T releases: R35 "-therm", R36 "-thermal")
ZONE_GAIN = {
    "tj-therm": 1.0,
    "tj-thermal": 1.0,
    "GPU-therm": 0.95,
    "gpu-thermal": 0.95,
    "CPU-therm": 0.9,
    "cpu-thermal": 0.9,
    "Tboard_tegra": 0.3,
    "Tdiode_tegra": 0.35,
}
DEFAULT_GAIN = 0.85


def write_in_place(path: Path, text: str) -> None:
    """Overwrite a value file without changing its inode (readers keep it open)."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def online_zones(root: Path) -> dict[str, Path]:
    """zone type -> temp file, for zones that are not offline (-256 °C)."""
    out = {}
    for z in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        try:
            kind = (z / "type").read_text().strip()
            if int((z / "temp").read_text().split()[0]) > -256000:
                out[kind] = z / "temp"
        except (OSError, ValueError, IndexError):
            continue
    return out


@dataclass
class ThermalBoard:
    root: Path
    throttle_at_s: float  # seconds after start()
    clock_file: Path | None = None  # the domain that throttles; default: the first devfreq cur_freq
    from_hz: int = 1_300_500_000
    to_hz: int = 828_750_000
    ambient_c: float = 30.0
    rise_c: float = 70.0
    tau_s: float = 6.0
    dt_s: float = 0.05
    contention: CpuContention | None = None
    # filled in while running: the monotonic ns of start and of the throttle
    t_start_ns: int | None = None
    t_throttle_ns: int | None = None
    temps_at_throttle: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.zones = online_zones(self.root)
        if self.clock_file is None:
            self.clock_file = sorted((self.root / "sys/class/devfreq").glob("*/cur_freq"))[-1]
        self.temps = {z: self.ambient_c * 1.0 for z in self.zones}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_all(self.from_hz)

    def start(self) -> ThermalBoard:
        self.t_start_ns = time.monotonic_ns()
        self._thread = threading.Thread(target=self._run, name="thermal-board", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.contention is not None:
            self.contention.stop()

    def __enter__(self) -> ThermalBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        clock = self.from_hz
        last = time.monotonic_ns()
        while not self._stop.is_set():
            now = time.monotonic_ns()
            t = (now - self.t_start_ns) / 1e9
            if self.t_throttle_ns is None and t >= self.throttle_at_s:
                # the governor's move: clock down at the hottest moment, contention with it
                clock = self.to_hz
                write_in_place(self.clock_file, f"{clock}\n")
                if self.contention is not None:
                    self.contention.start()
                self.t_throttle_ns = time.monotonic_ns()
                self.temps_at_throttle = dict(self.temps)
            # power falls with the clock (dynamic power ~ f * V^2, V roughly with f)
            power = (clock / self.from_hz) ** 2
            step = (now - last) / 1e9
            last = now
            for z in self.temps:
                target = self.ambient_c + self.rise_c * ZONE_GAIN.get(z, DEFAULT_GAIN) * power
                self.temps[z] += (target - self.temps[z]) * (1 - math.exp(-step / self.tau_s))
            self._write_temps()
            self._stop.wait(self.dt_s)

    def _write_temps(self) -> None:
        for z, path in self.zones.items():
            write_in_place(path, f"{int(round(self.temps[z] * 1000))}\n")

    def _write_all(self, clock: int) -> None:
        write_in_place(self.clock_file, f"{clock}\n")
        self._write_temps()


class CpuContention:
    """Real CPU contention on chosen cores: ``pin(pid)`` confines a process (all
    its threads) to ``cpus``; ``start()`` launches busy processes pinned there."""

    def __init__(self, cpus: set[int], procs: int = 2) -> None:
        self.cpus = set(cpus)
        self.n = procs
        self.procs: list[subprocess.Popen] = []

    def pin(self, pid: int) -> None:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(tid), self.cpus)
            except ProcessLookupError:
                continue  # a thread that just ended

    def start(self) -> None:
        code = f"import os\nos.sched_setaffinity(0, {sorted(self.cpus)!r})\nwhile True:\n    pass\n"
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", code]))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        self.procs.clear()
