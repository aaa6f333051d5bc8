"""Hardware profiles: every shipped profile validates, detection names the right
board for each fixture tree, malformed profiles fail with the file and field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent import profiles
from agent.errors import BadInput
from agent.rootfs import RootFS

FIX = Path(__file__).resolve().parents[1] / "fixtures"
REPO_PROFILES = Path(__file__).resolve().parents[2] / "hw-profiles"

BOARDS = {
    "agx-orin": "agx-orin",
    "agx-orin-r36": "agx-orin",
    "orin-nx": "orin-nx",
    "orin-nano": "orin-nano",
    "xavier-nx": "xavier-nx",
    "jetson-nano": "jetson-nano",
    "imx8mp": "imx8mp",
    "am62a": "am62a",
    "x86": "generic-linux",
}


def test_every_shipped_profile_validates_and_is_named_for_its_file():
    names = sorted(p.name for p in profiles.load_all([REPO_PROFILES]))
    assert names == sorted(
        ["agx-orin", "orin-nx", "orin-nano", "xavier-nx", "jetson-nano", "imx8mp", "am62a", "generic-linux"]
    )


@pytest.mark.parametrize("board,expected", sorted(BOARDS.items()))
def test_auto_detection_names_the_fixture_board(board, expected):
    prof = profiles.resolve(RootFS(FIX / board), "auto", [REPO_PROFILES])
    assert prof.name == expected


def test_orin_family_is_told_apart_by_compatible_not_soc_id(tmp_path):
    # Same SoC id (35) for all three; an Orin NX module on the Orin Nano carrier
    # (p3768) must still be an Orin NX.
    root = tmp_path / "b"
    shutil.copytree(FIX / "orin-nano", root, symlinks=True)
    dt = root / "sys/firmware/devicetree/base"
    (dt / "compatible").write_bytes(b"nvidia,p3768-0000+p3767-0001\0nvidia,p3767-0001\0nvidia,tegra234\0")
    (dt / "model").write_bytes(b"NVIDIA Jetson Orin NX Engineering Reference Developer Kit\0")
    assert profiles.detect(RootFS(root), [REPO_PROFILES]).name == "orin-nx"


def test_soc_id_alone_does_not_pick_a_board(tmp_path):
    (tmp_path / "sys/devices/soc0").mkdir(parents=True)
    (tmp_path / "sys/devices/soc0/soc_id").write_text("35\n")
    assert profiles.detect(RootFS(tmp_path), [REPO_PROFILES]).name == "generic-linux"


def test_explicit_profile_overrides_detection_and_unknown_name_lists_choices():
    root = RootFS(FIX / "x86")
    assert profiles.resolve(root, "agx-orin", [REPO_PROFILES]).name == "agx-orin"
    with pytest.raises(BadInput) as ei:
        profiles.resolve(root, "jetson-tx9", [REPO_PROFILES])
    msg = str(ei.value)
    assert "unknown hardware profile 'jetson-tx9'" in msg and "agx-orin" in msg and "\n" not in msg


def test_env_dir_comes_first_in_the_search_path(tmp_path, monkeypatch):
    text = (REPO_PROFILES / "imx8mp.yaml").read_text().replace("NXP i.MX 8M Plus", "site copy")
    (tmp_path / "imx8mp.yaml").write_text(text)
    monkeypatch.setenv("EDGEBENCH_PROFILES_DIR", str(tmp_path))
    dirs = profiles.search_path()
    # the board's /etc copy overrides the shipped profiles, the env dir overrides both
    assert dirs[:3] == [tmp_path, Path("/etc/edgebench/hw-profiles"), REPO_PROFILES]
    assert Path(sys.prefix) / "share/edgebench/hw-profiles" in dirs
    assert profiles.load("imx8mp").description == "site copy"
    assert profiles.load("agx-orin").path == str(REPO_PROFILES / "agx-orin.yaml")


def test_accelerator_supplies_runtime_delegate_and_env():
    imx = profiles.load("imx8mp", [REPO_PROFILES]).accelerator("npu")
    assert imx["runtime"] == "litert"
    assert imx["delegate"] == "/usr/lib/libvx_delegate.so"
    assert imx["env"]["USE_GPU_INFERENCE"] == "0"
    assert imx["env"]["VIV_VX_ENABLE_CACHE_GRAPH_BINARY"] == "1"
    assert "VIV_VX_CACHE_BINARY_GRAPH_DIR" in imx["env"]
    am = profiles.load("am62a", [REPO_PROFILES])
    dsp = am.accelerator("dsp")
    assert dsp["providers"][0] == "TIDLExecutionProvider"
    assert "artifacts_folder" in dsp["provider_options"]["TIDLExecutionProvider"]
    assert am.accelerator("tflite")["delegate"] == "/usr/lib/libtidl_tfl_delegate.so"
    orin = profiles.load("agx-orin", [REPO_PROFILES]).accelerator("gpu")
    assert orin["providers"][:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    # a copy: the caller may mutate it without changing the profile
    orin["providers"].clear()
    assert profiles.load("agx-orin", [REPO_PROFILES]).accelerator("gpu")["providers"]


def test_unknown_accelerator_names_the_available_ones():
    with pytest.raises(BadInput, match=r"profile imx8mp has no accelerator 'dla'; available: gpu, npu"):
        profiles.load("imx8mp", [REPO_PROFILES]).accelerator("dla")


GOOD = (REPO_PROFILES / "orin-nano.yaml").read_text()

MALFORMED = [
    # (edit, expected message after the file name)
    (lambda t: t.replace("family: jetson\n", ""), "family: required field missing"),
    (
        lambda t: t.replace("family: jetson", "family: raspberry"),
        "family: expected one of jetson, imx, ti-k3",
    ),
    (
        lambda t: t.replace("source: devfreq", "source: pll"),
        "clocks.gpu.source: expected one of cpufreq, devfreq",
    ),
    (
        lambda t: t.replace("volts: 19.0", "volts: nineteen"),
        "power.supply.volts: expected int/float, got str",
    ),
    (lambda t: t.replace("thermal:\n", "thermal:\n  zonez: {}\n"), "thermal.zonez: unknown field"),
    (
        lambda t: t.replace("  cpu: {source: cpufreq}", "  cpu: [cpufreq]"),
        "clocks.cpu: expected a mapping, got list",
    ),
    (
        lambda t: t.replace("input_rails: [VDD_IN]", "input_rails: [VDD_TOTAL]"),
        "power.input_rails: 'VDD_TOTAL'",
    ),
    (lambda t: t.replace("name: orin-nano", "name: orin-nano-2"), "name: 'orin-nano-2' does not match"),
    (lambda t: t.replace("soc: tegra234", "soc: [tegra234"), "not valid YAML (line"),
    (
        lambda t: t.replace("{source: devfreq, of_node: [ga10b, gpu], load: true}", "{source: devfreq}"),
        "clocks.gpu.of_node: required for a devfreq clock",
    ),
]


@pytest.mark.parametrize("edit,expected", MALFORMED, ids=[m[1].split(":")[0] for m in MALFORMED])
def test_malformed_profile_error_names_file_and_field(tmp_path, edit, expected):
    bad = tmp_path / "orin-nano.yaml"
    bad.write_text(edit(GOOD))
    with pytest.raises(BadInput) as ei:
        profiles.load("orin-nano", [tmp_path])
    msg = str(ei.value)
    assert msg.startswith(f"{bad}: "), msg
    assert expected in msg, msg
    assert "\n" not in msg


def test_cli_info_with_malformed_profile_exits_2_with_one_line(tmp_path):
    (tmp_path / "orin-nano.yaml").write_text(GOOD.replace("source: devfreq", "source: pll"))
    env = {"EDGEBENCH_PROFILES_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-m", "agent.cli", "info", "--sysfs-root", str(FIX / "orin-nano"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "orin-nano.yaml: clocks.gpu.source: expected one of cpufreq, devfreq" in lines[0]
    assert res.stdout == ""


def test_a_clock_may_name_the_frequency_it_should_hold(tmp_path):
    text = (REPO_PROFILES / "agx-orin.yaml").read_text()
    text = text.replace("load: true}", "load: true, expected_hz: 1300500000}")
    (tmp_path / "agx-orin.yaml").write_text(text)
    prof = profiles.load("agx-orin", [tmp_path])
    assert prof.clocks["gpu"]["expected_hz"] == 1300500000
    (tmp_path / "agx-orin.yaml").write_text(text.replace("expected_hz: 1300500000", "expected_hz: fast"))
    with pytest.raises(BadInput, match=r"agx-orin.yaml: clocks.gpu.expected_hz: expected int/float, got str"):
        profiles.load("agx-orin", [tmp_path])
