"""One board, one set of zone names: sysfs, tegrastats and jtop name the same
zone the same, on JetPack 5 (L4T R35: ``CPU-therm``, ``Tboard_tegra``...) and
JetPack 6 (R36: ``cpu-thermal``...). Sources in tests/fixtures/README.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import profiles
from agent.rootfs import RootFS
from agent.telemetry.jtop import from_jtop
from agent.telemetry.sysfs import SysfsReader
from agent.telemetry.tegrastats import parse_line, to_sample

FIX = Path(__file__).resolve().parents[2] / "fixtures"
REPO_PROFILES = Path(__file__).resolve().parents[3] / "hw-profiles"

# board tree -> L4T major release its /etc/nv_tegra_release claims
RELEASES = {"agx-orin": 35, "agx-orin-r36": 36, "orin-nx": 35, "orin-nano": 36, "xavier-nx": 35}

ORIN_NAMES = {"cpu", "gpu", "cv0", "cv1", "cv2", "soc0", "soc1", "soc2", "tj"}
EXPECTED_NAMES = {
    "agx-orin": ORIN_NAMES | {"board", "diode"},
    "agx-orin-r36": ORIN_NAMES,
    "orin-nx": ORIN_NAMES,
    "orin-nano": ORIN_NAMES,
    "xavier-nx": {"ao", "cpu", "gpu", "pll", "aux", "board", "diode", "fan_est"},
}


def zone_types(root: Path) -> dict[str, int]:
    """zone type -> raw millidegrees, straight from the tree."""
    out = {}
    for z in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        out[(z / "type").read_text().strip()] = int((z / "temp").read_text())
    return out


def short_name(zone_type: str) -> str:
    # How jetson-stats names a zone (jtop/core/temperature.py,
    # get_virtual_thermal_temperature): the type up to the first "-", else up to
    # the first "_". tegrastats prints the same names (CPU@, Tboard@, tj@ on R35;
    # cpu@, tj@ on R36).
    return zone_type.split("-")[0] if "-" in zone_type else zone_type.split("_")[0]


def jtop_temperature(root: Path) -> dict[str, dict]:
    """What jtop's ``jetson.temperature`` gives on this tree: {name: {temp (C), online}},
    offline zones at -256, PMIC left out (as jetson-stats does)."""
    out = {}
    for ztype, raw in zone_types(root).items():
        name = short_name(ztype)
        if "PMIC" in name:
            continue
        temp = raw / 1000.0 if raw > -256000 else -256.0
        out[name] = {"temp": temp, "online": temp != -256.0}
    return out


def tegrastats_line(root: Path) -> str:
    """A tegrastats line for this tree's zones (offline ones at -256C, as tegrastats prints them)."""
    temps = " ".join(f"{short_name(t)}@{max(raw, -256000) / 1000:g}C" for t, raw in zone_types(root).items())
    return f"RAM 4321/62801MB (lfb 1759x4MB) CPU [1%@729,2%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] {temps}"


def l4t_major(root: Path) -> int:
    first = (root / "etc/nv_tegra_release").read_text().splitlines()[0]  # "# R35 (release), ..."
    return int(first.split()[1][1:])


@pytest.mark.parametrize("board", sorted(RELEASES))
def test_fixture_zone_spelling_matches_the_release_it_claims(board):
    root = FIX / board
    assert l4t_major(root) == RELEASES[board]
    types = set(zone_types(root))
    if RELEASES[board] >= 36:
        assert all(t.endswith("-thermal") for t in types), types
    else:
        # R35: "-therm" zones plus the on-module sensor zones; never the R36 "-thermal"
        assert not any(t.endswith("-thermal") for t in types), types
        assert any(t.endswith("-therm") for t in types), types
    # nothing matches neither release (e.g. lowercase "tboard_tegra")
    assert not {"tboard_tegra", "tdiode_tegra"} & types


@pytest.mark.parametrize("board", sorted(RELEASES))
def test_sysfs_tegrastats_and_jtop_give_the_same_names_on_one_board(board):
    root = FIX / board
    rfs = RootFS(root)
    prof = profiles.detect(rfs, [REPO_PROFILES])
    rd = SysfsReader(rfs, prof)
    assert {z.name for z in rd.zones} == EXPECTED_NAMES[board]
    by_sysfs = rd.read()["temps_c"]
    by_tegrastats = to_sample(parse_line(tegrastats_line(root)), prof)["temps_c"]
    by_jtop = from_jtop(prof, None, jtop_temperature(root), None)["temps_c"]
    assert by_sysfs  # the tree has online zones
    assert by_tegrastats == pytest.approx(by_sysfs)
    assert by_jtop == pytest.approx(by_sysfs)


@pytest.mark.parametrize(
    "line_name,board,expect",
    [
        # JetPack 5, AGX Orin 64GB (GDWR/jetson_exporter#14)
        ("JP5_AGX_ORIN", "agx-orin", {"cpu", "board", "soc2", "diode", "soc0", "tj", "soc1"}),
        # JetPack 5 (R35.3.1), Orin NX 16GB (DataDog/datadog-agent#17678)
        ("JP5_ORIN_NX", "orin-nx", {"cv0", "cpu", "soc2", "soc0", "cv1", "gpu", "tj", "soc1", "cv2"}),
        # JetPack 6, Orin Nano (henrygd/beszel agent tests)
        ("JP6_ORIN_NANO", "orin-nano", {"cpu", "soc2", "soc0", "gpu", "tj", "soc1"}),
    ],
)
def test_captured_tegrastats_lines_use_the_names_sysfs_gives_that_release(line_name, board, expect):
    import test_telemetry_tegrastats as captures

    line = getattr(captures, line_name)
    rfs = RootFS(FIX / board)
    prof = profiles.detect(rfs, [REPO_PROFILES])
    names = set(to_sample(parse_line(line), prof)["temps_c"])
    assert names == expect
    assert names <= {z.name for z in SysfsReader(rfs, prof).zones}


@pytest.mark.parametrize("board", ["agx-orin", "orin-nx", "orin-nano"])
def test_orin_profiles_map_both_release_spellings_to_one_name(board):
    prof = profiles.load(board, [REPO_PROFILES])
    pairs = [("CPU-therm", "cpu-thermal"), ("GPU-therm", "gpu-thermal"), ("tj-therm", "tj-thermal")]
    pairs += [(f"CV{i}-therm", f"cv{i}-thermal") for i in range(3)]
    pairs += [(f"SOC{i}-therm", f"soc{i}-thermal") for i in range(3)]
    for r35, r36 in pairs:
        assert prof.zone_name(r35) == prof.zone_name(r36) == r36.split("-")[0], (r35, r36)


def test_jtop_names_of_jetpack5_and_xavier_zones_map_to_the_profile_names():
    # jtop cuts the type at "-" or "_": CPU-therm -> CPU, Tboard_tegra -> Tboard,
    # thermal-fan-est -> thermal; none of them is "<name>-thermal"
    temps = {
        "CPU": {"temp": 40.5, "online": True},
        "Tboard": {"temp": 33.0, "online": True},
        "Tdiode": {"temp": 35.25, "online": True},
        "thermal": {"temp": 38.0, "online": True},
        "AUX": {"temp": -256.0, "online": False},
    }
    xavier = profiles.load("xavier-nx", [REPO_PROFILES])
    assert from_jtop(xavier, None, temps, None)["temps_c"] == {
        "cpu": 40.5,
        "board": 33.0,
        "diode": 35.25,
        "fan_est": 38.0,
    }
    orin = profiles.load("agx-orin", [REPO_PROFILES])
    got = from_jtop(orin, None, {"SOC1": {"temp": 41.0, "online": True}, "tj": {"temp": 44.0}}, None)
    assert got["temps_c"] == {"soc1": 41.0, "tj": 44.0}


def test_a_profile_with_one_spelling_still_names_the_other_releases_short_names():
    # a board's own profile may list only the R36 spelling; tegrastats on R35 prints CPU@
    prof = profiles.Profile.from_dict(
        {
            "name": "custom",
            "description": "x",
            "family": "jetson",
            "soc": "tegra234",
            "detect": {"compatible": ["x"]},
            "thermal": {"zones": {"cpu-thermal": "cpu", "tj-thermal": "junction"}},
        }
    )
    s = to_sample(parse_line("CPU@40.5C tj@41C SOC0@39C"), prof)
    assert s["temps_c"] == {"cpu": 40.5, "junction": 41.0, "soc0": 39.0}
    assert from_jtop(prof, None, {"CPU": {"temp": 40.5}, "tj": {"temp": 41.0}}, None)["temps_c"] == {
        "cpu": 40.5,
        "junction": 41.0,
    }
