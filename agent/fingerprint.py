"""The board fingerprint (``edgebench.info/v1``): what board, SoC, kernel, L4T
/ JetPack, TensorRT and runtimes a result came from, plus a telemetry snapshot
(every zone, clock and rail read now).

Board files are read through the root (``--sysfs-root``) so fixture trees can
stand in for boards. The runtime part describes the Python that runs the
workers; it is probed once in a short child process (importing onnxruntime
into the agent would cost tens of MiB of RSS) and cached.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from agent.profiles import Profile, board_identity, resolve
from agent.rootfs import RootFS

SCHEMA = "edgebench.info/v1"

# L4T release -> JetPack (NVIDIA's JetPack archive); unknown releases get None.
_JETPACK = {
    "32.4.3": "4.4",
    "32.4.4": "4.4.1",
    "32.5.0": "4.5",
    "32.5.1": "4.5.1",
    "32.5.2": "4.5.1",
    "32.6.1": "4.6",
    "32.7.1": "4.6.1",
    "32.7.2": "4.6.2",
    "32.7.3": "4.6.3",
    "32.7.4": "4.6.4",
    "32.7.5": "4.6.5",
    "32.7.6": "4.6.6",
    "35.1.0": "5.0.2",
    "35.2.1": "5.1",
    "35.3.1": "5.1.1",
    "35.4.1": "5.1.2",
    "35.5.0": "5.1.3",
    "35.6.0": "5.1.4",
    "35.6.1": "5.1.5",
    "36.2.0": "6.0 DP",
    "36.3.0": "6.0",
    "36.4.0": "6.1",
    "36.4.3": "6.2",
    "36.4.4": "6.2.1",
    "38.2.0": "7.0",
}
_L4T = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)(?:.*?BOARD:\s*([\w-]+))?")

# The probe runs in the workers' Python (PYTHONPATH reaches this package), so
# the runtimes it reports are the ones a run will load.
_PROBE = r"""
import json, sys
from agent.rootfs import RootFS
from agent.runtimes.detect import runtime_info
print(json.dumps(runtime_info(RootFS(sys.argv[1]))))
"""

_runtime_cache: dict[tuple[str, str], dict[str, Any]] = {}
_runtime_lock = threading.Lock()


def probe_runtimes(root: RootFS, python: str | None = None, timeout_s: float = 90.0) -> dict[str, Any]:
    """Runtimes of the worker Python, probed once per (python, root) in a child."""
    python = python or sys.executable
    key = (python, str(root.root))
    with _runtime_lock:
        if key in _runtime_cache:
            return _runtime_cache[key]
        env = dict(os.environ)
        pkg_parent = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            res = subprocess.run(
                [python, "-c", _PROBE, str(root.root)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=env,
            )
            data = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
            if res.returncode != 0:
                data = {"error": (res.stderr.strip().splitlines() or ["probe failed"])[-1]}
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            data = {"error": f"runtime probe failed: {exc}"}
        _runtime_cache[key] = data
        return data


def parse_l4t(text: str | None) -> dict[str, Any] | None:
    """``# R36 (release), REVISION: 4.0, GCID: ..., BOARD: generic, ...`` ->
    {release: "36.4.0", jetpack: "6.1", board: "generic"}."""
    if not text:
        return None
    m = _L4T.search(text.splitlines()[0] if text else "")
    if not m:
        return None
    major, rev, board = m.group(1), m.group(2), m.group(3)
    parts = rev.split(".")
    while len(parts) < 2:
        parts.append("0")
    release = f"{major}.{parts[0]}.{parts[1]}"
    return {"release": release, "jetpack": _JETPACK.get(release), "board": board, "raw": text.splitlines()[0]}


def dpkg_version(root: RootFS, packages: tuple[str, ...]) -> tuple[str, str] | None:
    """(package, upstream version) of the first installed package found in
    /var/lib/dpkg/status: '8.5.2-1+cuda11.4' -> '8.5.2'."""
    text = root.read_text("/var/lib/dpkg/status")
    if not text:
        return None
    found: dict[str, str] = {}
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(" ")
        )
        name = fields.get("Package")
        if name in packages and "installed" in fields.get("Status", "") and fields.get("Version"):
            found[name] = fields["Version"].split(":")[-1].split("-")[0]
    for p in packages:
        if p in found:
            return p, found[p]
    return None


def _cpu_count(root: RootFS) -> int | None:
    text = root.read_text("/sys/devices/system/cpu/present")
    if text:
        n = 0
        try:
            for part in text.split(","):
                a, _, b = part.partition("-")
                n += (int(b) - int(a) + 1) if b else 1
            return n
        except ValueError:
            pass
    return os.cpu_count() if _is_host(root) else None


def _mem_total(root: RootFS) -> int | None:
    text = root.read_text("/proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.M)
    return int(m.group(1)) * 1024 if m else None


def _cpu_model(root: RootFS) -> str | None:
    text = root.read_text("/proc/cpuinfo") or ""
    m = re.search(r"^(?:model name|Model|Hardware)\s*:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else None


_NVP_MODE = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)")


def nvpmodel(root: RootFS) -> dict[str, Any] | None:
    """The Jetson power mode: /var/lib/nvpmodel/status (``pmode:0002 fmode:quiet``)
    named through /etc/nvpmodel.conf (``< POWER_MODEL ID=2 NAME=30W >``)."""
    status = root.read_text("/var/lib/nvpmodel/status")
    if not status:
        return None
    m = re.search(r"pmode:(\d+)", status)
    if not m:
        return None
    mode = int(m.group(1))
    names = {int(i): n for i, n in _NVP_MODE.findall(root.read_text("/etc/nvpmodel.conf") or "")}
    fm = re.search(r"fmode:(\S+)", status)
    return {"id": mode, "name": names.get(mode), "fan_mode": fm.group(1) if fm else None}


# DLA engines are host1x children named <addr>.nvdla<N> (15880000.nvdla0,
# 158c0000.nvdla1 on Xavier and Orin); the host1x node moved between releases
# (platform/13e10000.host1x, platform/host1x, platform/bus@0/13e00000.host1x),
# so look in the platform bus listing and under any host1x.
_NVDLA_GLOBS = (
    "/sys/bus/platform/devices/*.nvdla[0-9]*",
    "/sys/devices/platform/*host1x/*.nvdla[0-9]*",
    "/sys/devices/platform/bus@0/*host1x/*.nvdla[0-9]*",
)


def gpu_arch(prof: Profile) -> dict[str, Any] | None:
    """{sm, source}: the GPU's compute capability x10. The kernel does not
    expose it in sysfs, so it comes from the hardware profile."""
    return {"sm": prof.gpu_sm, "source": "profile"} if prof.gpu_sm is not None else None


def dla(root: RootFS, prof: Profile) -> dict[str, Any] | None:
    """{cores, source}: DLA devices the kernel shows (an Orin NX 8GB has one
    where the 16GB has two), else the profile's count."""
    found = {p.rsplit("/", 1)[-1] for pattern in _NVDLA_GLOBS for p in root.glob(pattern)}
    if found:
        return {"cores": len(found), "source": "sysfs"}
    return {"cores": prof.dla_cores, "source": "profile"} if prof.dla_cores is not None else None


def _is_host(root: RootFS) -> bool:
    return os.path.realpath(root.root) == "/"


def telemetry_snapshot(root: RootFS, prof: Profile) -> dict[str, Any]:
    """Every zone, clock and rail of the profile, read now, plus where each is."""
    from agent.telemetry.sysfs import SysfsReader

    reader = SysfsReader(root, prof, keep_open=False)
    try:
        now = reader.read()
        inv = reader.describe()
    finally:
        reader.close()
    return {**now, "inventory": inv}


def collect_info(root: RootFS, profile: str | Profile = "auto") -> dict[str, Any]:
    """The fingerprint. ``profile``: a name, ``auto`` (detect) or a Profile."""
    prof = profile if isinstance(profile, Profile) else resolve(root, profile)
    ident = board_identity(root)
    host = _is_host(root)
    hostname = root.read_text("/proc/sys/kernel/hostname") or root.read_text("/etc/hostname")
    if not hostname and host:
        hostname = socket.gethostname()
    kernel = root.read_text("/proc/sys/kernel/osrelease") or (platform.release() if host else None)
    l4t = parse_l4t(root.read_text("/etc/nv_tegra_release"))
    runtimes = probe_runtimes(root)
    trt = dpkg_version(root, ("tensorrt", "libnvinfer10", "libnvinfer8", "libnvinfer7"))
    tensorrt = {"version": trt[1], "source": f"dpkg:{trt[0]}"} if trt else None
    if tensorrt is None and isinstance(runtimes.get("tensorrt"), dict):
        tensorrt = {"version": runtimes["tensorrt"].get("version"), "source": "python"}
    soc0 = {k: v for k, v in ident["soc0"].items() if v}
    return {
        "schema": SCHEMA,
        "hostname": hostname,
        "profile": prof.name,
        "profile_info": prof.to_dict(),
        "board": ident["model"],
        "compatible": ident["compatible"],
        "soc": prof.soc if prof.soc != "unknown" else (soc0.get("soc_id") or soc0.get("family") or prof.soc),
        "soc0": soc0,
        "kernel": kernel,
        "kernel_version": root.read_text("/proc/version") or (platform.version() if host else None),
        "machine": platform.machine() if host else None,
        "cpu_count": _cpu_count(root),
        "cpu_model": _cpu_model(root),
        "memory_bytes": _mem_total(root),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "runtimes": runtimes,
        "l4t": l4t,
        "jetpack": l4t["jetpack"] if l4t else None,
        "nvpmodel": nvpmodel(root),
        "tensorrt": tensorrt,
        "gpu": gpu_arch(prof),
        "dla": dla(root, prof),
        "accelerators": {name: prof.accelerator(name) for name in sorted(prof.accelerators)},
        # every name --accelerator takes here: the entries and the aliases they serve
        "accelerator_names": sorted(
            set(prof.accelerators) | {s for a in prof.accelerators.values() for s in a.get("serves") or []}
        ),
        "power_budget": prof.budget,
        "telemetry": telemetry_snapshot(root, prof),
    }
