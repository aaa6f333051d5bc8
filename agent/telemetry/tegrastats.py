"""tegrastats: a parser for its one-line reports (JetPack 4 to 7) and a source
that runs it, the last fallback when neither sysfs rails nor jtop answer.

Line shapes handled (see tests/agent/telemetry/test_telemetry_tegrastats.py for real lines):
- JetPack 4 (L4T R32): ``CPU@32C``, rails ``POM_5V_IN 2524/2524`` (mW, no unit)
- JetPack 5 (R35): ``CPU@44.562C``, ``tj@44.343C``, rails ``VDD_IN 5121mW/5121mW``,
  ``GR3D_FREQ 0%@[305,305]``, an optional ``MM-DD-YYYY HH:MM:SS`` prefix
- JetPack 6 (R36): lowercase zones ``cpu@48.5C``, ``NVENC off`` engine fields
- JetPack 7 (R38, Thor): ``gpu@62.906C/62.906C`` (a second value), rails
  ``VDD_GPU``/``VDD_CPU_SOC_MSS``, no ``GR3D_FREQ``; rails with a third value
  (``cur/avg/max``) are read too.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from typing import Any

from agent.clock import now_ns
from agent.profiles import Profile

log = logging.getLogger("edgebench.telemetry")

_TS = re.compile(r"^\s*(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d)\s+")
_TEMP = re.compile(r"(?<![\w%@])([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C(?:/(-?\d+(?:\.\d+)?)C)?(?=\s|$)")
_RAIL = re.compile(r"(?<!\S)([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?(\d+)[\d,]*\]?)?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_ENGINE = re.compile(
    r"(?<!\S)(NVENC\d?|NVDEC\d?|NVJPG\d?|VIC|OFA|APE|NVDLA\d|DLA\d\w*|PVA\d\w*)(?:_FREQ)? (off|\d+)(?=\s|$)"
)
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "LFB"}


def parse_line(line: str) -> dict[str, Any]:
    """One tegrastats line -> dict. Offline zones (-256 C) are dropped."""
    out: dict[str, Any] = {"temps_c": {}, "rails_mw": {}, "cpu": [], "engines": {}}
    m = _TS.match(line)
    if m:
        out["timestamp"] = m.group(1)
    m = _RAM.search(line)
    if m:
        out["ram_used_bytes"] = int(m.group(1)) * 1024 * 1024
        out["ram_total_bytes"] = int(m.group(2)) * 1024 * 1024
    m = _CPU.search(line)
    if m:
        for item in m.group(1).split(","):
            item = item.strip()
            if item == "off" or not item:
                out["cpu"].append(None)
                continue
            load, _, mhz = item.partition("%@")
            load = load.rstrip("%")
            out["cpu"].append({"load": int(load) / 100.0, "mhz": int(mhz) if mhz else None})
    m = _GR3D.search(line)
    if m:
        out["gpu_load"] = int(m.group(1)) / 100.0
        if m.group(2):
            out["gpu_mhz"] = int(m.group(2))
    m = _EMC.search(line)
    if m:
        out["emc_load"] = int(m.group(1)) / 100.0
        if m.group(2):
            out["emc_mhz"] = int(m.group(2))
    for name, val, _limit in _TEMP.findall(line):
        t = float(val)
        if t <= -256.0:  # powered-off cluster
            continue
        out["temps_c"][name] = t
    for name, cur, avg, mx in _RAIL.findall(line):
        if name in _NOT_RAILS or name == "NC":
            continue
        rail = {"cur": int(cur), "avg": int(avg)}
        if mx:
            rail["max"] = int(mx)
        out["rails_mw"][name] = rail
    for name, val in _ENGINE.findall(line):
        out["engines"][name] = None if val == "off" else int(val)
    return out


def zone_for(name: str, profile: Profile) -> str:
    """Map a tegrastats zone name (CPU, cpu, tj, SOC0, Tboard...) to the profile's
    stable name: tegrastats prints each zone's type cut at its first - or _
    (CPU-therm on L4T R35, cpu-thermal on R36, Tboard_tegra)."""
    return profile.zone_for_short(name)


def to_sample(parsed: dict[str, Any], profile: Profile) -> dict[str, Any]:
    """The sampler's sample keys from a parsed line."""
    temps = {zone_for(n, profile): t for n, t in parsed["temps_c"].items()}
    # tegrastats gives power only; current needs a voltage it does not print
    rails = {profile.rail_name(n): {"w": r["cur"] / 1000.0} for n, r in parsed["rails_mw"].items()}
    load = {}
    clocks = {}
    if "gpu_load" in parsed:
        load["gpu"] = parsed["gpu_load"]
    if "gpu_mhz" in parsed:
        clocks["gpu"] = parsed["gpu_mhz"] * 1_000_000
    for i, c in enumerate(parsed["cpu"]):
        if c and c.get("mhz"):
            clocks[f"cpu{i}"] = c["mhz"] * 1_000_000
    return {"temps_c": temps, "rails": rails, "load": load, "clocks_hz": clocks}


class TegrastatsSource:
    """Runs ``tegrastats --interval MS`` and keeps the latest parsed line."""

    name = "tegrastats"

    def __init__(self, profile: Profile, interval_ms: int = 100, cmd: list[str] | None = None) -> None:
        self.profile = profile
        self.cmd = cmd or ["tegrastats", "--interval", str(max(10, int(interval_ms)))]
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._latest: dict[str, Any] | None = None
        self._latest_ns = 0
        self.lines = 0

    def start(self) -> None:
        self._proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        self._thread = threading.Thread(target=self._pump, name="tegrastats", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                parsed = parse_line(line)
            except (ValueError, IndexError):
                continue  # a garbled line is skipped, not fatal
            self._latest = to_sample(parsed, self.profile)
            self._latest_ns = now_ns()
            self.lines += 1

    def read(self) -> dict[str, Any]:
        return self._latest or {}

    def wait_first(self, timeout_s: float = 2.0) -> bool:
        import time

        end = time.monotonic() + timeout_s
        while self._latest is None and time.monotonic() < end:
            if self._proc is not None and self._proc.poll() is not None and self.lines == 0:
                return False
            time.sleep(0.01)
        return self._latest is not None

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=2)
