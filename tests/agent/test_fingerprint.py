"""The board fingerprint over fixture trees, and `edgebench-agent info --json`
naming the right profile and reading every zone, clock and rail."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from agent.fingerprint import collect_info, dpkg_version, nvpmodel, parse_l4t
from agent.rootfs import RootFS

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures"

EXPECT = {
    # board: (profile, model, soc, kernel, cpus, l4t, jetpack, tensorrt)
    "agx-orin": (
        "agx-orin",
        "Jetson AGX Orin Developer Kit",
        "tegra234",
        "5.10.120-tegra",
        12,
        "35.4.1",
        "5.1.2",
        "8.5.2",
    ),
    "agx-orin-r36": (
        "agx-orin",
        "Jetson AGX Orin Developer Kit",
        "tegra234",
        "5.15.148-tegra",
        12,
        "36.4.0",
        "6.1",
        "10.3.0.30",
    ),
    "orin-nx": (
        "orin-nx",
        "NVIDIA Orin NX Developer Kit",
        "tegra234",
        "5.10.120-tegra",
        8,
        "35.4.1",
        "5.1.2",
        None,
    ),
    "orin-nano": (
        "orin-nano",
        "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit",
        "tegra234",
        "5.15.148-tegra",
        6,
        "36.4.0",
        "6.1",
        "10.3.0.30",
    ),
    "xavier-nx": (
        "xavier-nx",
        "NVIDIA Jetson Xavier NX Developer Kit",
        "tegra194",
        "5.10.192-tegra",
        6,
        "35.5.0",
        "5.1.3",
        "8.5.2",  # var/lib/dpkg/status: libnvinfer8 (TensorRT of JetPack 5.1.3)
    ),
    "jetson-nano": (
        "jetson-nano",
        "NVIDIA Jetson Nano Developer Kit",
        "tegra210",
        "4.9.253-tegra",
        4,
        "32.7.1",
        "4.6.1",
        "8.2.1",
    ),
    "imx8mp": (
        "imx8mp",
        "NXP i.MX8MPlus EVK board",
        "i.MX8MP",
        "6.6.23-lts-next-gdcd0bba1a5e0",
        4,
        None,
        None,
        None,
    ),
    "am62a": (
        "am62a",
        "Texas Instruments AM62A7 SK",
        "AM62AX",
        "6.6.32-ti-g8d1a6f0f7dbc",
        4,
        None,
        None,
        None,
    ),
    "x86": ("generic-linux", "Dell Inc. OptiPlex 7090", "unknown", "6.8.0-48-generic", 8, None, None, None),
}


def fixture_counts(board: str) -> tuple[int, int, int]:
    """(online zones, cpufreq policies + matched GPU devfreq, connected rails), from the tree itself."""
    root = FIX / board
    zones = sum(
        1
        for z in (root / "sys/class/thermal").glob("thermal_zone*")
        if int((z / "temp").read_text()) > -256000
    )
    clocks = len(list((root / "sys/devices/system/cpu/cpufreq").glob("policy*")))
    clocks += (
        sum(1 for d in (root / "sys/class/devfreq").glob("*") if "vic" not in d.name)
        if (root / "sys/class/devfreq").exists()
        else 0
    )
    rails = 0
    for h in (root / "sys/class/hwmon").glob("hwmon*"):
        if (h / "name").read_text().strip() == "ina3221":
            rails += sum(1 for lab in h.glob("in*_label") if lab.read_text().strip() != "NC")
    rails += len(list(root.glob("sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_*")))
    return zones, clocks, rails


@pytest.mark.parametrize("board", sorted(EXPECT))
def test_collect_info_per_fixture(board):
    prof, model, soc, kernel, cpus, l4t, jetpack, trt = EXPECT[board]
    info = collect_info(RootFS(FIX / board), "auto")
    assert info["schema"] == "edgebench.info/v1"
    assert info["profile"] == prof
    assert info["board"] == model
    assert info["soc"] == soc
    assert info["kernel"] == kernel
    assert info["cpu_count"] == cpus
    assert info["memory_bytes"] > 2**30
    assert info["hostname"] == (FIX / board / "etc/hostname").read_text().strip()
    assert (info["l4t"] or {}).get("release") == l4t
    assert info["jetpack"] == jetpack
    assert (info["tensorrt"] or {}).get("version") == trt
    compat = FIX / board / "sys/firmware/devicetree/base/compatible"
    assert info["compatible"] == (
        [c for c in compat.read_bytes().decode().split("\0") if c] if compat.exists() else []
    )
    zones, clocks, rails = fixture_counts(board)
    tel = info["telemetry"]
    assert (len(tel["temps_c"]), len(tel["clocks_hz"]), len(tel["rails"])) == (zones, clocks, rails)


def test_runtimes_are_probed_in_a_child_and_match_the_installed_ones():
    info = collect_info(RootFS(FIX / "x86"))
    ort = info["runtimes"]["onnxruntime"]
    assert ort["version"] == metadata.version("onnxruntime")
    assert "CPUExecutionProvider" in ort["providers"]
    assert info["runtimes"]["litert"]["version"] == metadata.version("ai-edge-litert")
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))


def test_collect_info_does_not_import_a_runtime_into_the_agent_process():
    code = (
        "import sys, json\n"
        "from agent.fingerprint import collect_info\n"
        "from agent.rootfs import RootFS\n"
        f"info = collect_info(RootFS({str(FIX / 'agx-orin')!r}))\n"
        "mods = ('onnxruntime', 'ai_edge_litert', 'tflite_runtime', 'numpy')\n"
        "heavy = [m for m in mods if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'providers': info['runtimes']['onnxruntime']['providers']}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["heavy"] == [] and "CPUExecutionProvider" in out["providers"]


@pytest.mark.parametrize("board", sorted(EXPECT))
def test_agent_info_cli_names_the_profile_and_reads_every_sensor(board):
    res = subprocess.run(
        [str(REPO / ".venv/bin/edgebench-agent"), "info", "--sysfs-root", str(FIX / board), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["profile"] == EXPECT[board][0]
    zones, clocks, rails = fixture_counts(board)
    tel = info["telemetry"]
    assert len(tel["temps_c"]) == zones and len(tel["clocks_hz"]) == clocks and len(tel["rails"]) == rails
    # the inventory also lists the offline zones, with where they live
    all_zones = len(list((FIX / board / "sys/class/thermal").glob("thermal_zone*")))
    assert len(tel["inventory"]["zones"]) == all_zones


def test_explicit_profile_is_used_even_when_detection_would_differ():
    info = collect_info(RootFS(FIX / "x86"), "imx8mp")
    assert (
        info["profile"] == "imx8mp"
        and info["accelerators"]["npu"]["delegate"] == "/usr/lib/libvx_delegate.so"
    )


def test_unknown_profile_via_cli_exits_2_with_one_line():
    res = subprocess.run(
        [
            str(REPO / ".venv/bin/edgebench-agent"),
            "info",
            "--sysfs-root",
            str(FIX / "x86"),
            "--profile",
            "tx9",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "unknown hardware profile 'tx9'" in res.stderr


def test_l4t_release_line_parsing():
    assert parse_l4t(
        "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: x"
    ) == {
        "release": "36.4.3",
        "jetpack": "6.2",
        "board": "generic",
        "raw": "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: x",
    }
    thor = (
        "# R38 (release), REVISION: 2.0, GCID: 41844464, BOARD: generic, EABI: aarch64, DATE: Fri Aug 22 2025"
    )
    assert parse_l4t(thor)["jetpack"] == "7.0"
    assert parse_l4t("# R99 (release), REVISION: 1.0")["jetpack"] is None
    assert parse_l4t("not a release file") is None and parse_l4t(None) is None


def test_dpkg_status_prefers_installed_tensorrt_packages(tmp_path):
    st = tmp_path / "var/lib/dpkg/status"
    st.parent.mkdir(parents=True)
    st.write_text(
        "Package: libnvinfer10\nStatus: deinstall ok config-files\nVersion: 10.0.0-1\n\n"
        "Package: libnvinfer8\nStatus: install ok installed\nVersion: 8.6.2.3-1+cuda12.2\n"
    )
    assert dpkg_version(RootFS(tmp_path), ("libnvinfer10", "libnvinfer8")) == ("libnvinfer8", "8.6.2.3")
    assert dpkg_version(RootFS(tmp_path / "none"), ("libnvinfer8",)) is None


def test_jetson_power_mode_and_cpu_model(tmp_path):
    orin = collect_info(RootFS(FIX / "agx-orin"))
    assert orin["nvpmodel"] == {"id": 0, "name": "MAXN", "fan_mode": "quiet"}
    root = tmp_path / "b"
    shutil.copytree(FIX / "agx-orin", root, symlinks=True)
    (root / "var/lib/nvpmodel/status").write_text("pmode:0002 fmode:cool\n")
    assert nvpmodel(RootFS(root)) == {"id": 2, "name": "MODE_30W", "fan_mode": "cool"}
    (root / "etc/nvpmodel.conf").unlink()
    assert nvpmodel(RootFS(root)) == {"id": 2, "name": None, "fan_mode": "cool"}
    x86 = collect_info(RootFS(FIX / "x86"))
    assert x86["nvpmodel"] is None
    assert x86["cpu_model"] == "11th Gen Intel(R) Core(TM) i7-11700 @ 2.50GHz"
