"""The sysfs reader over fixture trees laid out as on the real boards: every
zone, clock and rail is read; offline sensors are absent, not errors; hwmon
renumbering and devfreq renaming do not matter."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from agent import profiles
from agent.rootfs import RootFS
from agent.telemetry.sysfs import SysfsReader, hwmon_parent

FIX = Path(__file__).resolve().parents[2] / "fixtures"
BOARDS = [
    "agx-orin",
    "agx-orin-r36",
    "orin-nx",
    "orin-nano",
    "xavier-nx",
    "jetson-nano",
    "imx8mp",
    "am62a",
    "x86",
]


def reader(root) -> SysfsReader:
    r = RootFS(root)
    return SysfsReader(r, profiles.detect(r))


def fixture_zones(root: Path) -> dict[str, int]:
    """zone type -> raw millidegrees, straight from the tree (last one wins for dups)."""
    out = {}
    for z in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        out[(z / "type").read_text().strip()] = int((z / "temp").read_text())
    return out


def copy_fixture(board: str, tmp_path: Path) -> Path:
    dst = tmp_path / board
    shutil.copytree(FIX / board, dst, symlinks=True)
    return dst


@pytest.mark.parametrize("board", BOARDS)
def test_reads_every_online_zone_and_every_cpufreq_policy(board):
    root = FIX / board
    rd = reader(root)
    snap = rd.read()
    zones = fixture_zones(root)
    online = {t: v for t, v in zones.items() if v > -256000}
    types_read = {z.type for z in rd.zones if z.name in snap["temps_c"]}
    assert types_read == set(online)
    for z in rd.zones:
        if z.name in snap["temps_c"]:
            assert snap["temps_c"][z.name] == pytest.approx(
                int(RootFS(root).read_text(f"{z.board_path}/temp")) / 1000
            )
    policies = sorted((root / "sys/devices/system/cpu/cpufreq").glob("policy*"))
    assert len(policies) >= 1
    for p in policies:
        dom = "cpu" + p.name[len("policy") :]
        assert snap["clocks_hz"][dom] == int((p / "scaling_cur_freq").read_text()) * 1000  # kHz -> Hz


def test_agx_orin_names_zones_by_profile_and_drops_offline_cv_zones():
    snap = reader(FIX / "agx-orin").read()
    assert snap["temps_c"]["cpu"] == 47.343
    assert snap["temps_c"]["tj"] == 47.343
    assert snap["temps_c"]["gpu"] == 41.843
    # cv0..cv2 read -256000 (DLA/PVA powered off): offline, absent
    assert not {"cv0", "cv1", "cv2"} & set(snap["temps_c"])


def test_agx_orin_rails_from_both_ina3221_hwmon_devices_skip_nc_channels():
    snap = reader(FIX / "agx-orin").read()
    assert set(snap["rails"]) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}
    r = snap["rails"]["VIN_SYS_5V0"]
    assert r["v"] == pytest.approx(5.008) and r["a"] == pytest.approx(0.724)
    assert r["w"] == pytest.approx(5.008 * 0.724)
    assert snap["rails"]["VDDQ_VDD2_1V8AO"]["a"] == pytest.approx(0.026)


def test_gpu_devfreq_clock_and_per_mille_load():
    snap = reader(FIX / "agx-orin").read()
    assert snap["clocks_hz"]["gpu"] == 306000000  # devfreq cur_freq is already Hz
    assert snap["load"] == {"gpu": pytest.approx(0.127)}  # 127 per-mille
    assert "vic" not in snap["clocks_hz"]  # a devfreq device the profile does not ask for
    limits = reader(FIX / "agx-orin").clock_limits()
    assert limits["gpu"] == {"max_hz": 1300500000, "min_hz": 306000000}
    assert limits["cpu8"]["max_hz"] == 2201600 * 1000


@pytest.mark.parametrize(
    "board,devfreq",
    [("orin-nano", "17000000.gpu"), ("xavier-nx", "17000000.gv11b"), ("jetson-nano", "57000000.gpu")],
)
def test_gpu_is_found_by_of_node_name_on_each_generation(board, devfreq):
    rd = reader(FIX / board)
    gpu = [c for c in rd.clocks if c.domain == "gpu"]
    assert len(gpu) == 1 and gpu[0].board_path == f"/sys/class/devfreq/{devfreq}"
    assert rd.read()["clocks_hz"]["gpu"] == int(
        (FIX / board / "sys/class/devfreq" / devfreq / "cur_freq").read_text()
    )


def test_gpu_devfreq_renamed_is_still_found_by_of_node(tmp_path):
    root = copy_fixture("agx-orin", tmp_path)
    cls = root / "sys/class/devfreq"
    target = os.readlink(cls / "17000000.ga10b")
    (cls / "17000000.ga10b").unlink()
    (cls / "gpu-something-else").symlink_to(target)
    snap = reader(root).read()
    assert snap["clocks_hz"]["gpu"] == 306000000 and snap["load"]["gpu"] == pytest.approx(0.127)


def test_hwmon_renumbered_between_boots_reads_the_same_rails(tmp_path):
    root = copy_fixture("agx-orin", tmp_path)
    before = reader(root).read()["rails"]
    dev = root / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon"
    (dev / "hwmon3").rename(dev / "hwmon5")
    (root / "sys/class/hwmon/hwmon3").unlink()
    (root / "sys/class/hwmon/hwmon5").symlink_to(
        "../../devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon5"
    )
    rd = reader(root)
    assert rd.read()["rails"] == before
    assert {r.board_path for r in rd.rails} == {"/sys/class/hwmon/hwmon5", "/sys/class/hwmon/hwmon4"}


def test_jetson_nano_ina3221x_iio_rails_use_driver_power():
    snap = reader(FIX / "jetson-nano").read()
    assert set(snap["rails"]) == {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}
    assert snap["rails"]["POM_5V_IN"] == {
        "v": pytest.approx(4.976),
        "a": pytest.approx(0.507),
        "w": pytest.approx(2.524),
    }


def test_boards_without_rail_monitors_have_no_rails():
    for board in ("imx8mp", "am62a", "x86"):
        assert reader(FIX / board).read()["rails"] == {}


def test_duplicate_zone_types_get_distinct_names():
    snap = reader(FIX / "x86").read()
    assert snap["temps_c"]["acpitz"] == 27.8 and snap["temps_c"]["acpitz_1"] == 29.8
    assert snap["temps_c"]["x86_pkg_temp"] == 45.0


def test_trip_points_are_read_and_offline_zones_keep_their_trips():
    rd = reader(FIX / "imx8mp")
    inv = rd.describe()
    assert inv["zones"]["cpu"]["trips"] == [
        {"type": "passive", "temp_c": 85.0},
        {"type": "critical", "temp_c": 95.0},
    ]
    assert inv["zones"]["soc"]["type"] == "soc-thermal"


def test_values_are_re_read_on_each_call_through_kept_open_files(tmp_path):
    root = copy_fixture("orin-nano", tmp_path)
    rd = reader(root)
    assert rd.read()["temps_c"]["cpu"] == 48.5
    (root / "sys/devices/virtual/thermal/thermal_zone0/temp").write_text("71250\n")
    (root / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon1/curr1_input").write_text(
        "2500\n"
    )
    snap = rd.read()
    assert snap["temps_c"]["cpu"] == 71.25
    assert snap["rails"]["VDD_IN"]["a"] == pytest.approx(2.5)


def test_zone_reading_minus_256_is_offline(tmp_path):
    root = copy_fixture("orin-nano", tmp_path)
    rd = reader(root)
    (root / "sys/devices/virtual/thermal/thermal_zone1/temp").write_text("-256\n")  # bare -256 form
    assert "gpu" not in rd.read()["temps_c"]
    (root / "sys/devices/virtual/thermal/thermal_zone1/temp").write_text("52500\n")  # back online
    assert rd.read()["temps_c"]["gpu"] == 52.5


def test_zone_raising_einval_is_offline_not_a_crash(tmp_path):
    # /proc/self/attr/current raises EINVAL on read without an LSM; it plays
    # the part of a Jetson zone whose sensor is powered off.
    src = "/proc/self/attr/current"
    try:
        fd = os.open(src, os.O_RDONLY)
        try:
            os.pread(fd, 64, 0)
            pytest.skip("this kernel does not raise EINVAL on /proc/self/attr/current")
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                pytest.skip(f"read gives {errno.errorcode[exc.errno]}, not EINVAL")
        finally:
            os.close(fd)
    except OSError:
        pytest.skip("no /proc/self/attr/current")
    root = copy_fixture("agx-orin", tmp_path)
    temp = root / "sys/devices/virtual/thermal/thermal_zone0/temp"
    temp.unlink()
    temp.symlink_to(src)
    for keep_open in (True, False):
        r = RootFS(root)
        snap = SysfsReader(r, profiles.detect(r), keep_open=keep_open).read()
        assert "cpu" not in snap["temps_c"]
        assert snap["temps_c"]["gpu"] == 41.843


def test_missing_sensor_files_are_absent_not_errors(tmp_path):
    root = copy_fixture("agx-orin", tmp_path)
    rd = reader(root)
    (root / "sys/devices/platform/17000000.ga10b/load").unlink()
    os.remove(root / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon3/curr2_input")
    snap = rd.read()
    assert "gpu" not in snap["load"] and "VDD_CPU_CV" not in snap["rails"]
    assert snap["clocks_hz"]["gpu"] == 306000000


def test_empty_root_reads_nothing():
    snap = SysfsReader(RootFS("/nonexistent-root"), profiles.load("agx-orin")).read()
    assert snap == {"temps_c": {}, "clocks_hz": {}, "rails": {}, "load": {}}


@pytest.mark.parametrize("board", BOARDS)
def test_hwmon_devices_sit_where_the_kernel_puts_them(board):
    # The driver core puts a class device whose parent is a class device (the
    # hwmon of a thermal zone, thermal_hwmon.c) straight into the parent's
    # directory: thermal_zone0/hwmon0. Only under a plain device (an i2c chip)
    # does it add a "hwmon/" glue directory: 1-0040/hwmon/hwmon3.
    links = sorted((FIX / board / "sys/class/hwmon").glob("hwmon*"))
    for link in links:
        real = link.resolve()
        parent = (real / "device").resolve()
        if parent.name.startswith("thermal_zone"):
            assert real.parent == parent, os.readlink(link)
        else:
            assert real.parent.name == "hwmon" and real.parent.parent == parent, os.readlink(link)
        assert hwmon_parent(RootFS(FIX / board).realpath(f"/sys/class/hwmon/{link.name}")) == parent.name


def test_thermal_zone_hwmon_reads_the_zone_temperature():
    # thermal_hwmon: one hwmon per zone type, tempN_input is the zone's temp
    for board, zone, hw, n in [("imx8mp", 0, 0, 1), ("imx8mp", 1, 1, 1), ("x86", 1, 0, 2)]:
        z = FIX / board / f"sys/class/thermal/thermal_zone{zone}"
        h = FIX / board / f"sys/class/hwmon/hwmon{hw}"
        assert (h / f"temp{n}_input").read_text() == (z / "temp").read_text()
    # the zones are still read, and the hwmon directories are not taken for zones
    rd = reader(FIX / "imx8mp")
    assert {z.type for z in rd.zones} == {"cpu-thermal", "soc-thermal"}
    assert rd.read()["temps_c"] == {"cpu": 43.0, "soc": 42.0}
