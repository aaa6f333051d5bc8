"""The board state that skews numbers, read once at a run's start through the
root path (``--sysfs-root``): CPU frequency governors, Jetson clocks not
locked (``jetson_clocks``) and the nvpmodel mode, GPU/NPU devfreq governors
that scale, swap in use, and zones already near a thermal trip point.
``environment{}`` holds what was read; each finding is also one warning line.
A file that is missing or unreadable is "unknown", never an error.

What ``jetson_clocks`` does, and so what "locked" means here: it "locks the
clocks to their maximums as defined by the active nvpmodel power mode"
(stanciuadrian/jetson-cool README), by setting each CPU policy's
``scaling_min_freq`` to its ``scaling_max_freq`` and the GPU devfreq's
``min_freq`` to its ``max_freq`` (the sysfs writes shown in the jetson_clocks
references in the code corpus, e.g. ``clocks_max_freq``: "set
scaling_min_freq = scaling_max_freq").
"""

from __future__ import annotations

from typing import Any

from agent.fingerprint import nvpmodel
from agent.profiles import Profile
from agent.rootfs import RootFS
from agent.telemetry.sysfs import offline_temp

CPUFREQ = "/sys/devices/system/cpu/cpufreq/policy*"
# devfreq governors that hold one frequency; every other one scales with load
FIXED_GOVERNORS = ("performance", "userspace", "powersave")
NEAR_TRIP_C = 10.0  # a start within this many degrees of a trip point is "near"
SCALING_TRIPS = ("passive", "hot", "critical")  # trip types that throttle or stop


def _num(path: str) -> int:
    digits = "".join(ch for ch in path.rsplit("/", 1)[-1] if ch.isdigit())
    return int(digits or 0)


def cpu_policies(root: RootFS) -> dict[str, dict[str, Any]]:
    """{policyN: {governor, min_khz, max_khz, hw_max_khz, locked}}; values None when unreadable."""
    out: dict[str, dict[str, Any]] = {}
    for pp in sorted(root.glob(CPUFREQ), key=_num):
        lo = root.read_int(f"{pp}/scaling_min_freq")
        hi = root.read_int(f"{pp}/scaling_max_freq")
        out[pp.rsplit("/", 1)[-1]] = {
            "path": pp,
            "governor": root.read_text(f"{pp}/scaling_governor"),
            "min_khz": lo,
            "max_khz": hi,
            "hw_max_khz": root.read_int(f"{pp}/cpuinfo_max_freq"),
            "locked": None if lo is None or hi is None else lo == hi,
        }
    return out


def devfreq_devices(root: RootFS, profile: Profile | None) -> dict[str, dict[str, Any]]:
    """The profile's devfreq clock domains (gpu...), or every devfreq device on
    a profile that names none: {domain: {path, governor, min_hz, max_hz, scaling}}."""
    wanted: dict[str, str] = {}  # of_node name -> domain
    for key, spec in (profile.clocks if profile else {}).items():
        if spec.get("source") == "devfreq":
            wanted.update({n: key for n in spec.get("of_node") or []})
    out: dict[str, dict[str, Any]] = {}
    for dp in root.glob("/sys/class/devfreq/*"):
        name = dp.rsplit("/", 1)[-1]
        node = root.read_text(f"{dp}/device/of_node/name") or name.rsplit(".", 1)[-1]
        if wanted and node not in wanted:
            continue
        domain = wanted.get(node, name)
        if domain in out:
            domain = name
        gov = root.read_text(f"{dp}/governor")
        lo, hi = root.read_int(f"{dp}/min_freq"), root.read_int(f"{dp}/max_freq")
        locked = None if lo is None or hi is None else lo == hi
        scaling = None if gov is None else (gov not in FIXED_GOVERNORS and locked is not True)
        out[domain] = {
            "path": dp,
            "device": name,
            "governor": gov,
            "min_hz": lo,
            "max_hz": hi,
            "locked": locked,
            "scaling": scaling,
        }
    return out


def swap(root: RootFS) -> dict[str, int] | None:
    """{total_bytes, used_bytes} from /proc/meminfo; None when it has no Swap lines."""
    text = root.read_text("/proc/meminfo") or ""
    vals: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("SwapTotal", "SwapFree") and rest.split():
            try:
                vals[key] = int(rest.split()[0]) * 1024
            except ValueError:
                pass
    if len(vals) != 2:
        return None
    return {"total_bytes": vals["SwapTotal"], "used_bytes": max(0, vals["SwapTotal"] - vals["SwapFree"])}


def thermal(root: RootFS, near_c: float = NEAR_TRIP_C) -> dict[str, dict[str, Any]]:
    """{zone type: {temp_c, trip_c, trip_type, margin_c}} for each zone with a
    reading and a throttling trip point (the lowest one)."""
    out: dict[str, dict[str, Any]] = {}
    for zp in sorted(root.glob("/sys/class/thermal/thermal_zone*"), key=_num):
        ztype = root.read_text(f"{zp}/type") or zp.rsplit("/", 1)[-1]
        raw = root.read_int(f"{zp}/temp")
        if raw is None or offline_temp(raw):
            continue
        trips = []
        for tp in root.glob(f"{zp}/trip_point_*_type"):
            ttype = root.read_text(tp)
            ttemp = root.read_int(tp[: -len("_type")] + "_temp")
            if ttype in SCALING_TRIPS and ttemp is not None and 0 < ttemp < 200_000:
                trips.append((ttemp / 1000.0, ttype))
        if not trips:
            continue
        trip_c, trip_type = min(trips)
        temp_c = raw / 1000.0
        name = ztype if ztype not in out else f"{ztype}_{zp.rsplit('/', 1)[-1]}"
        out[name] = {
            "temp_c": temp_c,
            "trip_c": trip_c,
            "trip_type": trip_type,
            "margin_c": round(trip_c - temp_c, 3),
            "near": trip_c - temp_c <= near_c,
        }
    return out


def probe(root: RootFS, profile: Profile | None) -> dict[str, Any]:
    """``environment{}`` with ``warnings[]``: one line per finding."""
    warnings: list[str] = []
    cpus = cpu_policies(root)
    scaling_cpu = [
        n for n, p in cpus.items() if p["governor"] not in (None, "performance") and not p["locked"]
    ]
    if scaling_cpu:
        govs = sorted({str(cpus[n]["governor"]) for n in scaling_cpu})
        warnings.append(
            f"CPU frequency governor {'/'.join(govs)} on {', '.join(scaling_cpu)}, not performance:"
            " clocks scale with load (--pin-clocks sets it for the run)"
        )
    dev = devfreq_devices(root, profile)
    for domain, d in dev.items():
        if d["scaling"]:
            span = ""
            if d["min_hz"] and d["max_hz"]:
                span = f" ({d['min_hz'] / 1e6:.0f}..{d['max_hz'] / 1e6:.0f} MHz)"
            warnings.append(f"{domain} devfreq governor {d['governor']} scales{span} ({d['device']})")
    env: dict[str, Any] = {
        "cpu_governors": {n: p["governor"] for n, p in cpus.items()} or "unknown",
        "cpufreq": cpus or "unknown",
        "devfreq": dev or ({} if profile and not _has_devfreq(profile) else "unknown"),
    }
    if profile is not None and profile.family == "jetson":
        cpu_locked = [p["locked"] for p in cpus.values()]
        gpu_locked = [d["locked"] for d in dev.values()]
        states = cpu_locked + gpu_locked
        locked = None if not states or None in states else all(states)
        mode = nvpmodel(root)
        env["jetson_clocks"] = {
            "locked": locked,
            "cpu_locked": None if not cpu_locked or None in cpu_locked else all(cpu_locked),
            "gpu_locked": None if not gpu_locked or None in gpu_locked else all(gpu_locked),
        }
        env["nvpmodel"] = mode if mode is not None else "unknown"
        mode_text = f"nvpmodel mode {mode['id']} ({mode.get('name') or '?'})" if mode else "nvpmodel unknown"
        if locked is False:
            warnings.append(f"Jetson clocks not locked (jetson_clocks not run; {mode_text})")
        elif locked is None:
            warnings.append(f"Jetson clocks state unknown ({mode_text})")
    sw = swap(root)
    env["swap"] = sw if sw is not None else "unknown"
    if sw is not None and sw["used_bytes"] > 0:
        warnings.append(
            f"swap in use: {sw['used_bytes'] / 2**20:.0f} MiB of {sw['total_bytes'] / 2**20:.0f} MiB"
            " (page-ins stall inferences)"
        )
    zones = thermal(root)
    env["thermal"] = zones or "unknown"
    for name, z in zones.items():
        if z["near"]:
            warnings.append(
                f"start near a thermal trip: {name} at {z['temp_c']:.1f} C,"
                f" {z['margin_c']:.1f} C below its {z['trip_type']} trip {z['trip_c']:.1f} C"
            )
    env["warnings"] = warnings
    return env


def _has_devfreq(profile: Profile) -> bool:
    return any(s.get("source") == "devfreq" for s in profile.clocks.values())
