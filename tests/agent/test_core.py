"""The shared core: run spec parsing, nearest-rank statistics, the root path."""

from __future__ import annotations

import os

import numpy as np
import pytest

from agent.errors import BadInput
from agent.rootfs import RootFS
from agent.spec import RunSpec
from agent.spec_text import parse_duration, parse_shape
from agent.stats import latency_summary_ms, nearest_rank

SHA = "ab" * 32


def test_nearest_rank_returns_an_observed_value():
    vals = sorted([5.0, 1.0, 4.0, 2.0, 3.0])
    assert nearest_rank(vals, 50) == 3.0
    assert nearest_rank(vals, 90) == 5.0
    assert nearest_rank(vals, 20) == 1.0
    assert nearest_rank(vals, 21) == 2.0
    assert nearest_rank(list(range(1, 1001)), 99.9) == 999


def test_latency_summary_in_ms_from_ns():
    lat = np.arange(1, 101) * 1_000_000  # 1..100 ms
    s = latency_summary_ms(lat)
    assert s["min"] == 1.0 and s["max"] == 100.0
    assert s["p50"] == 50.0 and s["p99"] == 99.0 and s["p90"] == 90.0
    assert s["mean"] == pytest.approx(50.5)
    with pytest.raises(ValueError):
        latency_summary_ms([])


def test_spec_roundtrip_and_soak_defaults():
    spec = RunSpec.from_dict({"kind": "soak", "model_sha256": SHA, "duration_s": 1800})
    assert spec.soak is not None and spec.soak.window_s == 10.0
    again = RunSpec.from_dict(spec.to_dict())
    assert again == spec


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"kind": "burn"}, "unknown run kind"),
        ({"model_sha256": "xyz"}, "model_sha256"),
        ({"runtime": "tensorflow"}, "unknown runtime"),
        ({"threads": 0}, "threads"),
        ({"min_iterations": 0}, "min_iterations"),
        ({"input_shapes": {"x": [1, 0]}}, "input shape"),
        ({"meter": {"kind": "fluke", "port": "/dev/null"}}, "unknown meter kind"),
        ({"bogus": 1}, "unknown run spec field"),
        ({"kind": "validate"}, "reference"),
    ],
)
def test_spec_rejects_bad_input_with_one_line(patch, message):
    data = {"kind": "bench", "model_sha256": SHA, **patch}
    with pytest.raises(BadInput) as exc:
        RunSpec.from_dict(data)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_parse_shape_and_duration():
    assert parse_shape("input.1=1x3x224x224") == ("input.1", [1, 3, 224, 224])
    assert parse_duration("30m") == 1800.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("12.5") == 12.5
    for bad in ("x=1xax3", "1x3x224", "x=1x0"):
        with pytest.raises(BadInput):
            parse_shape(bad)
    for bad in ("10 minutes", "m30", ""):
        with pytest.raises(BadInput):
            parse_duration(bad)


def test_rootfs_maps_board_paths_and_tolerates_offline_sensors(tmp_path):
    zone = tmp_path / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("45500\n")
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson AGX Orin\x00")
    fs = RootFS(tmp_path)
    assert fs.read_text("/sys/class/thermal/thermal_zone0/type") == "cpu-thermal"
    assert fs.read_int("/sys/class/thermal/thermal_zone0/temp") == 45500
    assert fs.read_text("/proc/device-tree/model") == "NVIDIA Jetson AGX Orin"
    assert fs.read_int("/sys/class/thermal/thermal_zone9/temp") is None
    assert fs.glob("/sys/class/thermal/thermal_zone*") == ["/sys/class/thermal/thermal_zone0"]
    (zone / "temp").write_text("garbage\n")
    assert fs.read_int("/sys/class/thermal/thermal_zone0/temp") is None


def test_rootfs_resolves_symlinks_inside_the_root(tmp_path):
    dev = tmp_path / "sys/devices/platform/17000000.gpu"
    dev.mkdir(parents=True)
    link_dir = tmp_path / "sys/class/devfreq"
    link_dir.mkdir(parents=True)
    os.symlink("../../devices/platform/17000000.gpu", link_dir / "17000000.gpu")
    fs = RootFS(tmp_path)
    assert fs.realpath("/sys/class/devfreq/17000000.gpu") == "/sys/devices/platform/17000000.gpu"
