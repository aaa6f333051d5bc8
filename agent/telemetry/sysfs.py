"""The sysfs reader: thermal zones, cpufreq policies, devfreq devices (GPU clock
and per-mille load) and INA3221 power rails, named by the hardware profile.

Discovery runs once (globs: hwmon indices change between boots, so nothing is
a fixed path); each read then only re-reads the value files. Value files are
kept open and re-read with ``pread(fd, n, 0)``: sysfs regenerates an
attribute on a read at offset 0, and it saves the open/close pair per file
(bench/bench_telemetry.py measures both ways).

A sensor that fails to read (EINVAL/EIO/ENODATA: Jetson zones of powered-off
clusters) or reads -256 (-256000 millidegrees) is offline: absent from the
sample, never an exception.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from agent.profiles import Profile
from agent.rootfs import RootFS

_NUM = re.compile(r"(\d+)$")


def _num_suffix(path: str) -> int:
    m = _NUM.search(path)
    return int(m.group(1)) if m else 0


class Attr:
    """One sysfs value file, opened once and re-read at offset 0."""

    __slots__ = ("path", "keep_open", "_fd")

    def __init__(self, path: str, keep_open: bool = True) -> None:
        self.path = path  # host path (already under the root)
        self.keep_open = keep_open
        self._fd: int | None = None

    def read_int(self) -> int | None:
        try:
            if not self.keep_open:
                with open(self.path, "rb") as f:
                    data = f.read(64)
            else:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                data = os.pread(self._fd, 64, 0)
            return int(data.split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def hwmon_parent(real: str) -> str:
    """The device an hwmon class device belongs to, from its resolved path.
    Under a plain device (an i2c chip) the driver core adds a ``hwmon/`` glue
    directory: ``.../1-0040/hwmon/hwmon3``; under a class device (a thermal
    zone) it does not: ``.../thermal_zone0/hwmon0``."""
    parts = real.rstrip("/").split("/")
    return parts[-3] if len(parts) >= 3 and parts[-2] == "hwmon" else parts[-2]


def offline_temp(raw: int | None) -> bool:
    # Jetson reports -256 C (raw -256000) for zones of powered-off clusters;
    # some kernels report the bare -256.
    return raw is None or raw == -256 or raw <= -256000


@dataclass
class Zone:
    name: str
    type: str
    board_path: str
    temp: Attr
    trips: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Clock:
    domain: str
    source: str  # cpufreq | devfreq
    board_path: str
    cur: Attr
    scale: int  # to Hz: cpufreq is kHz, devfreq Hz
    max_path: str
    min_path: str
    load: Attr | None = None


@dataclass
class Rail:
    name: str
    label: str
    board_path: str
    volts_mv: Attr
    curr_ma: Attr
    power_mw: Attr | None = None  # ina3221x exposes it; else V*I


class SysfsReader:
    """Reads every zone, clock and rail the profile describes (and any zone it
    does not, under its own type name)."""

    name = "sysfs"

    def __init__(self, root: RootFS, profile: Profile, keep_open: bool = True) -> None:
        self.root = root
        self.profile = profile
        self.keep_open = keep_open
        self._lock = threading.Lock()  # sampler thread and /metrics scrapes share fds
        self.zones: list[Zone] = []
        self.clocks: list[Clock] = []
        self.rails: list[Rail] = []
        self.discover()

    # --- discovery ----------------------------------------------------------
    def _attr(self, board_path: str) -> Attr:
        return Attr(str(self.root.path(board_path)), self.keep_open)

    def discover(self) -> None:
        self.close()
        self.zones = self._find_zones()
        self.clocks = self._find_clocks()
        self.rails = self._find_rails()

    def _find_zones(self) -> list[Zone]:
        zones: list[Zone] = []
        seen: dict[str, int] = {}
        paths = sorted(self.root.glob("/sys/class/thermal/thermal_zone*"), key=_num_suffix)
        for zp in paths:
            ztype = self.root.read_text(f"{zp}/type")
            if not ztype or ztype in self.profile.hide_zones:
                continue
            name = self.profile.zone_name(ztype)
            if name in seen:  # x86 boxes often have several "acpitz"
                seen[name] += 1
                name = f"{name}_{seen[name]}"
            else:
                seen[name] = 0
            trips = []
            for tp in sorted(self.root.glob(f"{zp}/trip_point_*_type"), key=lambda p: _num_suffix(p[:-5])):
                ttype = self.root.read_text(tp)
                ttemp = self.root.read_int(tp[: -len("_type")] + "_temp")
                if ttype and ttemp is not None and not offline_temp(ttemp):
                    trips.append({"type": ttype, "temp_c": ttemp / 1000.0})
            zones.append(Zone(name, ztype, zp, self._attr(f"{zp}/temp"), trips))
        return zones

    def _find_clocks(self) -> list[Clock]:
        clocks: list[Clock] = []
        devfreqs = None
        for key, spec in self.profile.clocks.items():
            if spec["source"] == "cpufreq":
                wanted = spec.get("policies")
                pols = sorted(self.root.glob("/sys/devices/system/cpu/cpufreq/policy*"), key=_num_suffix)
                for pp in pols:
                    n = _num_suffix(pp)
                    if wanted is not None and n not in wanted:
                        continue
                    if not self.root.exists(f"{pp}/scaling_cur_freq"):
                        continue
                    clocks.append(
                        Clock(
                            f"{key}{n}",
                            "cpufreq",
                            pp,
                            self._attr(f"{pp}/scaling_cur_freq"),
                            1000,
                            f"{pp}/cpuinfo_max_freq",
                            f"{pp}/cpuinfo_min_freq",
                        )
                    )
            else:
                if devfreqs is None:
                    devfreqs = self._devfreq_nodes()
                names = set(spec.get("of_node") or [])
                hits = [(dp, node) for dp, node in devfreqs if node in names]
                for i, (dp, _node) in enumerate(hits):
                    domain = key if i == 0 else f"{key}{i}"
                    load = None
                    if spec.get("load") and self.root.exists(f"{dp}/device/load"):
                        load = self._attr(f"{dp}/device/load")
                    clocks.append(
                        Clock(
                            domain,
                            "devfreq",
                            dp,
                            self._attr(f"{dp}/cur_freq"),
                            1,
                            f"{dp}/max_freq",
                            f"{dp}/min_freq",
                            load,
                        )
                    )
        return clocks

    def _devfreq_nodes(self) -> list[tuple[str, str]]:
        """(devfreq dir, device-tree node name) for every devfreq device. The
        node name (of_node/name: ga10b, gv11b, gpu...) identifies the GPU on
        every JetPack; the directory name changed between releases."""
        out = []
        for dp in self.root.glob("/sys/class/devfreq/*"):
            node = self.root.read_text(f"{dp}/device/of_node/name")
            if not node:
                node = dp.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
            out.append((dp, node))
        return out

    def _find_rails(self) -> list[Rail]:
        power = self.profile.power or {}
        driver = power.get("driver")
        if not driver:
            return []
        # The same INA3221 chip is served by the hwmon driver (L4T R35+) or the
        # older ina3221x IIO driver (R32): try the profile's first, then the other.
        order = [self._ina3221_hwmon, self._ina3221x_iio]
        if driver == "ina3221x":
            order.reverse()
        for find in order:
            rails = find()
            if rails:
                return rails
        return []

    def _ina3221_hwmon(self) -> list[Rail]:
        rails: list[Rail] = []
        for hp in sorted(self.root.glob("/sys/class/hwmon/hwmon*"), key=_num_suffix):
            if self.root.read_text(f"{hp}/name") != "ina3221":
                continue
            dev = hwmon_parent(self.root.realpath(hp))
            for ch in (1, 2, 3):
                if not self.root.exists(f"{hp}/curr{ch}_input"):
                    continue
                label = self.root.read_text(f"{hp}/in{ch}_label") or f"{dev}_ch{ch}"
                if label.upper() == "NC":  # not connected
                    continue
                rails.append(
                    Rail(
                        self.profile.rail_name(label),
                        label,
                        hp,
                        self._attr(f"{hp}/in{ch}_input"),
                        self._attr(f"{hp}/curr{ch}_input"),
                    )
                )
        return rails

    def _ina3221x_iio(self) -> list[Rail]:
        rails: list[Rail] = []
        for ip in self.root.glob("/sys/bus/i2c/drivers/ina3221x/*/iio:device*"):
            for ch in (0, 1, 2):
                label = self.root.read_text(f"{ip}/rail_name_{ch}")
                if not label or label.upper() == "NC":
                    continue
                rails.append(
                    Rail(
                        self.profile.rail_name(label),
                        label,
                        ip,
                        self._attr(f"{ip}/in_voltage{ch}_input"),
                        self._attr(f"{ip}/in_current{ch}_input"),
                        self._attr(f"{ip}/in_power{ch}_input"),
                    )
                )
        return rails

    # --- reading ------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        """One snapshot: {temps_c, clocks_hz, rails, load}; offline sensors absent."""
        temps: dict[str, float] = {}
        clocks: dict[str, int] = {}
        load: dict[str, float] = {}
        rails: dict[str, dict[str, float]] = {}
        with self._lock:
            for z in self.zones:
                raw = z.temp.read_int()
                if not offline_temp(raw):
                    temps[z.name] = raw / 1000.0
            for c in self.clocks:
                v = c.cur.read_int()
                if v is not None:
                    clocks[c.domain] = v * c.scale
                if c.load is not None:
                    lv = c.load.read_int()
                    if lv is not None:
                        load[c.domain] = lv / 1000.0  # per-mille
            for r in self.rails:
                mv = r.volts_mv.read_int()
                ma = r.curr_ma.read_int()
                if mv is None or ma is None:
                    continue
                mw = r.power_mw.read_int() if r.power_mw is not None else None
                v, a = mv / 1000.0, ma / 1000.0
                rails[r.name] = {"v": v, "a": a, "w": mw / 1000.0 if mw is not None else v * a}
        return {"temps_c": temps, "clocks_hz": clocks, "rails": rails, "load": load}

    def clock_limits(self) -> dict[str, dict[str, int]]:
        """{domain: {min_hz, max_hz}} read now (nvpmodel can change them)."""
        out = {}
        for c in self.clocks:
            mx = self.root.read_int(c.max_path)
            mn = self.root.read_int(c.min_path)
            d = {}
            if mx is not None:
                d["max_hz"] = mx * c.scale
            if mn is not None:
                d["min_hz"] = mn * c.scale
            out[c.domain] = d
        return out

    def describe(self) -> dict[str, Any]:
        """Inventory: where every sensor is, trips, limits (for info and docs)."""
        limits = self.clock_limits()
        return {
            "zones": {z.name: {"type": z.type, "path": z.board_path, "trips": z.trips} for z in self.zones},
            "clocks": {
                c.domain: {
                    "source": c.source,
                    "path": c.board_path,
                    "load": c.load is not None,
                    **limits[c.domain],
                }
                for c in self.clocks
            },
            "rails": {
                r.name: {
                    "label": r.label,
                    "path": r.board_path,
                    "input": r.name in self.profile.input_rails,
                }
                for r in self.rails
            },
        }

    def close(self) -> None:
        for group in (self.zones, self.clocks, self.rails):
            for item in group:
                for a in vars(item).values():
                    if isinstance(a, Attr):
                        a.close()
