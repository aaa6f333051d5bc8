"""tegrastats lines from each JetPack generation, verbatim from public captures
(sources in tests/fixtures/README.md, "tegrastats lines")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import wait_until

from agent import profiles
from agent.telemetry.tegrastats import TegrastatsSource, parse_line, to_sample

REPO_PROFILES = Path(__file__).resolve().parents[3] / "hw-profiles"

# JetPack 4 (L4T R32), Jetson Nano: integer temps, rails without a unit.
JP4_NANO = (
    "RAM 1655/3956MB (lfb 311x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [14%@204,14%@204,10%@204,11%@204] EMC_FREQ 3%@1600 GR3D_FREQ 16%@76 APE 25 PLL@36C CPU@39C "
    "iwlwifi@44C PMIC@50C GPU@37C AO@47C thermal@38C POM_5V_IN 2247/2189 POM_5V_GPU 78/78 POM_5V_CPU 275/275"
)
# JetPack 4, Jetson Nano with two cores off.
JP4_NANO_OFF = (
    "RAM 1409/3964MB (lfb 28x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [22%@518,67%@518,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 "
    "PLL@28.5C CPU@32C PMIC@50C GPU@30.5C AO@39.5C thermal@31.25C "
    "POM_5V_IN 2003/2003 POM_5V_GPU 0/0 POM_5V_CPU 320/320"
)
# JetPack 4 (R32), Jetson TX2: no frequencies after the load percentages.
JP4_TX2 = (
    "RAM 2020/7852MB (lfb 1164x4MB) CPU [9%@345,21%@345,25%@345,3%@345,1%@345,1%@345] EMC_FREQ 0% "
    "GR3D_FREQ 0% PLL@42.5C MCPU@42.5C PMIC@100C Tboard@40C GPU@41C BCPU@42.5C thermal@41.9C "
    "Tdiode@41.25C VDD_SYS_GPU 153/158 VDD_SYS_SOC 536/547 VDD_4V0_WIFI 633/527 VDD_IN 3140/3208 "
    "VDD_SYS_CPU 536/590 VDD_SYS_DDR 557/601"
)
# JetPack 5 (R35), AGX Orin: date prefix, GR3D bracket, -256C offline zones, mW rails, NC channels.
JP5_AGX_ORIN = (
    "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) "
    "CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] "
    "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.562C Tboard@32C "
    "SOC2@40.093C Tdiode@33C SOC0@41.093C CV1@-256C GPU@-256C tj@44.343C SOC1@41.25C CV2@-256C "
    "VDD_GPU_SOC 2340mW/2340mW VDD_CPU_CV 390mW/390mW VIN_SYS_5V0 4025mW/4025mW NC 0mW/0mW "
    "VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"
)
# JetPack 5 (R35.3.1), Orin NX 16GB: uppercase zones from the R35 "-therm" zone types.
JP5_ORIN_NX = (
    "06-16-2023 10:45:09 RAM 6334/15388MB (lfb 1770x4MB) SWAP 491/7694MB (cached 0MB) "
    "CPU [6%@729,9%@729,5%@729,16%@729,off,off,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@611 GR3D2_FREQ 0%@0 "
    "VIC_FREQ 729 APE 174 CV0@45.812C CPU@47.937C SOC2@46.093C SOC0@46.968C CV1@46.406C GPU@45.875C "
    "tj@48.875C SOC1@48.875C CV2@45.75C VDD_IN 5299mW/5299mW VDD_CPU_GPU_CV 773mW/773mW VDD_SOC 1424mW/1424mW"
)
# JetPack 6 (R36), Orin Nano: lowercase zones, engines "off".
JP6_ORIN_NANO = (
    "11-15-2024 08:38:09 RAM 6185/7620MB (lfb 8x2MB) SWAP 851/3810MB (cached 1MB) "
    "CPU [15%@729,11%@729,14%@729,13%@729,11%@729,8%@729] EMC_FREQ 43%@2133 GR3D_FREQ 63%@[621] "
    "NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@53.968C soc2@52.437C soc0@50.75C "
    "gpu@53.343C tj@53.968C soc1@51.656C VDD_IN 12479mW/12479mW VDD_CPU_GPU_CV 4667mW/4667mW "
    "VDD_SOC 2817mW/2817mW"
)
# JetPack 7 generation on an Orin Nano: "cur/max" temps and three-value rails (cur/avg/max).
JP7_ORIN_NANO = (
    "09-04-2026 19:40:47 RAM 1803/7486MB (lfb 8x4MB) CPU [64%@729,0%@729,0%@729,0%@729,0%@729,0%@729] "
    "EMC_FREQ 5%@665 GR3D_FREQ 12%@[306] NVDEC0 off NVJPG0 off NVJPG1 off VIC off OFA off APE 200 "
    "cpu@47.562C/48C soc2@46.75C/46.906C soc0@45.843C/46.031C gpu@48C/48.125C tj@48C/48.125C "
    "soc1@46.937C/46.937C VDD_IN 4093mW/4463mW/4832mW VDD_CPU_GPU_CV 802mW/1019mW/1236mW "
    "VDD_SOC 1243mW/1340mW/1437mW"
)


def test_jp4_nano_integer_temps_and_unitless_rails():
    p = parse_line(JP4_NANO)
    assert p["temps_c"] == {
        "PLL": 36.0,
        "CPU": 39.0,
        "iwlwifi": 44.0,
        "PMIC": 50.0,
        "GPU": 37.0,
        "AO": 47.0,
        "thermal": 38.0,
    }
    assert p["rails_mw"] == {
        "POM_5V_IN": {"cur": 2247, "avg": 2189},
        "POM_5V_GPU": {"cur": 78, "avg": 78},
        "POM_5V_CPU": {"cur": 275, "avg": 275},
    }
    assert p["gpu_load"] == pytest.approx(0.16) and p["gpu_mhz"] == 76
    assert p["emc_load"] == pytest.approx(0.03) and p["emc_mhz"] == 1600
    assert p["cpu"] == [
        {"load": 0.14, "mhz": 204},
        {"load": 0.14, "mhz": 204},
        {"load": 0.10, "mhz": 204},
        {"load": 0.11, "mhz": 204},
    ]
    assert p["ram_used_bytes"] == 1655 * 2**20 and p["ram_total_bytes"] == 3956 * 2**20
    assert "IRAM" not in p["rails_mw"] and "RAM" not in p["rails_mw"]


def test_jp4_offline_cores_and_fractional_temps():
    p = parse_line(JP4_NANO_OFF)
    assert p["cpu"][2:] == [None, None]
    assert p["temps_c"]["thermal"] == 31.25 and p["temps_c"]["GPU"] == 30.5


def test_jp4_tx2_percent_without_frequency():
    p = parse_line(JP4_TX2)
    assert p["gpu_load"] == 0.0 and "gpu_mhz" not in p
    assert p["emc_load"] == 0.0 and "emc_mhz" not in p
    assert p["rails_mw"]["VDD_IN"] == {"cur": 3140, "avg": 3208}
    assert len(p["rails_mw"]) == 6
    assert p["temps_c"]["BCPU"] == 42.5 and p["temps_c"]["Tdiode"] == 41.25


def test_jp5_agx_orin_offline_zones_dropped_nc_rails_skipped():
    p = parse_line(JP5_AGX_ORIN)
    assert p["timestamp"] == "04-11-2025 10:36:27"
    assert set(p["temps_c"]) == {
        "CPU",
        "Tboard",
        "SOC2",
        "Tdiode",
        "SOC0",
        "tj",
        "SOC1",
    }  # CV0-2, GPU at -256
    assert p["temps_c"]["tj"] == 44.343
    assert set(p["rails_mw"]) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}
    assert p["rails_mw"]["VIN_SYS_5V0"] == {"cur": 4025, "avg": 4025}
    assert p["gpu_load"] == 0.0 and p["gpu_mhz"] == 0
    assert len(p["cpu"]) == 12 and p["engines"]["APE"] == 174 and p["engines"]["VIC"] == 729


def test_jp6_orin_nano_lowercase_zones_and_engines_off():
    p = parse_line(JP6_ORIN_NANO)
    assert p["temps_c"] == {
        "cpu": 53.968,
        "soc2": 52.437,
        "soc0": 50.75,
        "gpu": 53.343,
        "tj": 53.968,
        "soc1": 51.656,
    }
    assert p["rails_mw"]["VDD_IN"] == {"cur": 12479, "avg": 12479}
    assert p["gpu_load"] == pytest.approx(0.63) and p["gpu_mhz"] == 621
    assert p["engines"]["NVDEC"] is None and p["engines"]["OFA"] is None and p["engines"]["APE"] == 200


def test_jp7_two_value_temps_and_three_value_rails():
    p = parse_line(JP7_ORIN_NANO)
    assert p["temps_c"]["cpu"] == 47.562  # the current value, not the /48C limit
    assert p["temps_c"]["gpu"] == 48.0
    assert p["rails_mw"]["VDD_IN"] == {"cur": 4093, "avg": 4463, "max": 4832}
    assert p["rails_mw"]["VDD_SOC"] == {"cur": 1243, "avg": 1340, "max": 1437}
    assert p["engines"]["NVDEC0"] is None


@pytest.mark.parametrize(
    "line,board,expect",
    [
        (JP4_NANO, "jetson-nano", {"cpu": 39.0, "gpu": 37.0, "ao": 47.0, "pll": 36.0}),
        (JP5_AGX_ORIN, "agx-orin", {"cpu": 44.562, "tj": 44.343, "soc0": 41.093, "board": 32.0}),
        (JP6_ORIN_NANO, "orin-nano", {"cpu": 53.968, "gpu": 53.343, "tj": 53.968}),
    ],
)
def test_zone_names_map_to_the_profile_names_sysfs_uses(line, board, expect):
    s = to_sample(parse_line(line), profiles.load(board, [REPO_PROFILES]))
    for k, v in expect.items():
        assert s["temps_c"][k] == v


def test_sample_carries_rails_watts_gpu_load_and_clocks():
    s = to_sample(parse_line(JP6_ORIN_NANO), profiles.load("orin-nano", [REPO_PROFILES]))
    assert s["rails"]["VDD_IN"] == {"w": pytest.approx(12.479)}
    assert s["load"]["gpu"] == pytest.approx(0.63)
    assert s["clocks_hz"]["gpu"] == 621_000_000 and s["clocks_hz"]["cpu0"] == 729_000_000


def test_source_runs_the_command_and_keeps_the_latest_line():
    # A real child process streaming real lines through a pipe, as tegrastats does.
    script = (
        "import sys, time\n"
        f"lines = [{JP6_ORIN_NANO!r}, 'garbage line', {JP7_ORIN_NANO!r}]\n"
        "for l in lines:\n    print(l, flush=True)\n"
        "time.sleep(30)\n"  # a tegrastats that keeps running until closed
    )
    src = TegrastatsSource(profiles.load("orin-nano", [REPO_PROFILES]), cmd=[sys.executable, "-c", script])
    src.start()
    try:
        assert src.wait_first(10)
        wait_until(lambda: src.lines >= 3, timeout=10, step=0.01)
        assert src.lines == 3
        assert src.read()["rails"]["VDD_IN"]["w"] == pytest.approx(4.093)  # the last line wins
    finally:
        src.close()
    assert src._proc.poll() is not None  # terminated, not left behind


def test_source_with_missing_binary_raises_oserror():
    src = TegrastatsSource(profiles.load("orin-nano", [REPO_PROFILES]), cmd=["/nonexistent/tegrastats"])
    with pytest.raises(OSError):
        src.start()
