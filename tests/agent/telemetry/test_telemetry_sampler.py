"""The sampler thread: monotonic stamps, telemetry.jsonl, summary and windows
over fixture trees; the jtop and psutil sources."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import wait_until

from agent import profiles
from agent.rootfs import RootFS
from agent.telemetry import jtop as jtop_backend
from agent.telemetry.host import HostSource
from agent.telemetry.jtop import JtopSource, from_jtop
from agent.telemetry.sampler import Sampler, input_power_w

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def make(root, rate_hz=100.0, **kw) -> Sampler:
    r = RootFS(root)
    return Sampler(r, profiles.detect(r), rate_hz=rate_hz, **kw)


def test_samples_are_stamped_on_the_monotonic_clock_and_written_to_jsonl(tmp_path):
    s = make(FIX / "agx-orin")
    series = tmp_path / "telemetry.jsonl"
    t_before = time.monotonic_ns()
    s.start(series)
    assert wait_until(lambda: s.count >= 10, timeout=5, step=0.005)
    tel = s.stop()
    t_after = time.monotonic_ns()
    lines = [json.loads(x) for x in series.read_text().splitlines()]
    assert len(lines) == tel["samples"] == s.count >= 10
    stamps = [x["t_ns"] for x in lines]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert t_before <= stamps[0] and stamps[-1] <= t_after
    first = lines[0]
    assert first["temps_c"]["cpu"] == 47.343
    assert first["clocks_hz"]["gpu"] == 306000000
    assert first["rails"]["VIN_SYS_5V0"]["a"] == pytest.approx(0.724)
    assert first["load"]["gpu"] == pytest.approx(0.127)
    assert first["agent_rss_bytes"] > 0 and 0.0 <= first["cpu_util"] <= 1.0 and first["mem_used_bytes"] > 0
    assert "cv0" not in first["temps_c"]  # offline zone absent


def test_stop_returns_the_result_telemetry_block():
    s = make(FIX / "orin-nano", rate_hz=200)
    s.start()
    assert wait_until(lambda: s.count >= 5, timeout=5, step=0.005)
    tel = s.stop()
    assert tel["sources"] == ["sysfs", "psutil"]  # fixture root: no jtop/tegrastats
    assert tel["rate_hz"] == 200.0
    summ = tel["summary"]
    assert summ["temps_c"]["cpu"] == {"min": 48.5, "max": 48.5, "mean": 48.5}
    assert summ["clocks_hz"]["cpu4"] == {"min": 729600000, "max": 729600000}
    assert summ["rails_w"]["VDD_IN"]["mean"] == pytest.approx(5.056 * 0.868, abs=1e-4)
    assert summ["input_w"]["max"] == pytest.approx(5.056 * 0.868, abs=1e-4)  # VDD_IN is the input rail
    assert tel["sampler_cpu_s"] > 0


def test_rate_is_kept(tmp_path):
    s = make(FIX / "agx-orin", rate_hz=50)
    s.start()
    time.sleep(0.6)  # the behaviour: a span of real time whose achieved rate is measured
    tel = s.stop()
    assert 40 <= tel["achieved_hz"] <= 55
    assert 20 <= tel["samples"] <= 35


def test_summary_and_windows_follow_changing_sensors(tmp_path):
    root = tmp_path / "b"
    shutil.copytree(FIX / "orin-nano", root, symlinks=True)
    temp = root / "sys/devices/virtual/thermal/thermal_zone0/temp"
    freq = root / "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq"
    curr = root / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon1/curr1_input"
    s = make(root)
    s.start()
    assert wait_until(lambda: s.count >= 5, timeout=5, step=0.005)
    t_mid = time.monotonic_ns()
    temp.write_text("80000\n")
    freq.write_text("614400\n")  # throttled
    curr.write_text("2000\n")
    n = s.count
    assert wait_until(lambda: s.count >= n + 5, timeout=5, step=0.005)
    tel = s.stop()
    cpu = tel["summary"]["temps_c"]["cpu"]
    assert cpu["min"] == 48.5 and cpu["max"] == 80.0 and 48.5 < cpu["mean"] < 80.0
    assert tel["summary"]["clocks_hz"]["cpu0"] == {"min": 614400000, "max": 1510400000}
    before = s.window(0, t_mid)
    after = s.window(t_mid + 20_000_000, time.monotonic_ns())  # a sample period later
    assert before["temps_c"]["cpu"]["max"] == 48.5 and after["temps_c"]["cpu"]["max"] == 80.0
    assert after["clocks_hz"]["cpu0"]["min"] == 614400000
    assert after["power_w"] == pytest.approx(5.056 * 2.0, abs=1e-3)
    assert before["samples"] >= 5 and after["samples"] >= 1
    assert s.window(0, 1)["samples"] == 0 and s.window(0, 1)["power_w"] is None


def test_latest_and_on_sample_callback_and_a_failing_callback_does_not_stop_it(caplog):
    got = []

    def cb(sample):
        got.append(sample["t_ns"])
        if len(got) == 2:
            raise RuntimeError("watcher bug")

    s = make(FIX / "imx8mp")
    assert s.latest() is None
    with caplog.at_level(logging.ERROR, "edgebench.telemetry"):
        s.start(on_sample=cb)
        assert wait_until(lambda: len(got) >= 6, timeout=5, step=0.005)
        s.stop()
    assert s.latest()["t_ns"] in got
    assert s.latest()["temps_c"] == {"cpu": 43.0, "soc": 42.0}
    assert any("on_sample" in r.message for r in caplog.records)
    assert [x["t_ns"] for x in s.samples()] == got[: len(s.samples())]


def test_sampler_thread_ends_on_stop_and_can_be_restarted():
    s = make(FIX / "x86")
    s.start()
    assert wait_until(lambda: s.count >= 2, timeout=5, step=0.005)
    s.stop()
    assert not any(t.name == "telemetry-sampler" for t in threading.enumerate())
    s.start()
    assert wait_until(lambda: s.count >= 2, timeout=5, step=0.005)
    tel = s.stop()
    assert tel["samples"] >= 2 and "acpitz_1" in tel["summary"]["temps_c"]
    with pytest.raises(ValueError):
        make(FIX / "x86", rate_hz=0)


def test_input_power_sums_the_profile_input_rails():
    sample = {"rails": {"A": {"w": 1.0}, "B": {"w": 2.5}, "C": {"w": 4.0}}}
    assert input_power_w(sample, ["A", "B"]) == 3.5
    assert input_power_w(sample, []) == 7.5  # no input rails named: all of them
    assert input_power_w(sample, ["Z"]) is None
    assert input_power_w({"rails": {}}, ["A"]) is None


def _two_sources_and_a_sampler(caplog) -> tuple[list[str], dict]:
    prof = profiles.load("agx-orin")
    with caplog.at_level(logging.WARNING, "edgebench.telemetry"):
        a, b = JtopSource(prof), JtopSource(prof)
        assert a.open() is False and b.open() is False
        assert a.read() == {}
        # a live-board sampler on a Jetson profile still reads sysfs without jtop
        s = Sampler(RootFS(FIX / "agx-orin"), prof, rate_hz=100, live_sources=True)
        s.start()
        assert wait_until(lambda: s.count >= 2, timeout=5, step=0.005)
        tel = s.stop()
    said = [r.message for r in caplog.records if "jtop" in r.message]
    return said, tel


def test_jtop_not_installed_is_said_once_and_sysfs_is_used(caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "jtop", None)  # import jtop -> ImportError
    monkeypatch.setattr(jtop_backend, "_said", set())
    said, tel = _two_sources_and_a_sampler(caplog)
    assert said == ["jetson-stats (jtop) is not installed; reading sysfs"]
    assert tel["sources"][0] == "sysfs" and "jtop" not in tel["sources"]
    assert tel["summary"]["rails_w"]["VIN_SYS_5V0"]["max"] == pytest.approx(5.008 * 0.724, abs=1e-4)


def test_jtop_service_down_is_said_once_on_one_line_and_sysfs_is_used(caplog, monkeypatch):
    # the real jetson-stats client (the [jetson] extra) with no jtop.service behind it
    pytest.importorskip("jtop")
    monkeypatch.setattr(jtop_backend, "_said", set())
    said, tel = _two_sources_and_a_sampler(caplog)
    assert len(said) == 1 and "\n" not in said[0], said
    assert said[0].startswith("jtop service is not answering (The jtop.service is not active")
    assert said[0].endswith("; reading sysfs")
    assert tel["sources"][0] == "sysfs" and "jtop" not in tel["sources"]


def test_from_jtop_maps_rails_temps_and_engines():
    prof = profiles.load("orin-nano")
    power = {
        "rail": {
            "VDD_IN": {
                "online": True,
                "type": "INA3221",
                "status": "ok",
                "volt": 5080,
                "curr": 1000,
                "power": 5080,
            },
            "VDD_SOC": {"online": False, "volt": 0, "curr": 0, "power": 0},
        },
        "tot": {"power": 5080},
    }
    temperature = {"cpu": {"online": True, "temp": 48.5}, "cv0": {"online": False, "temp": -256.0}}
    engine = {
        "NVENC": {"NVENC": {"online": False, "cur": 0}},
        "APE": {"APE": {"online": True, "cur": 200000}},
    }
    out = from_jtop(prof, power, temperature, engine)
    assert out["rails"] == {"VDD_IN": {"v": 5.08, "a": 1.0, "w": pytest.approx(5.08)}}
    assert out["temps_c"] == {"cpu": 48.5}
    assert out["engines_hz"] == {"NVENC": 0, "APE": 200_000_000}


def test_host_source_reports_this_process():
    h = HostSource()
    x = h.read()
    rss = psutil.Process(os.getpid()).memory_info().rss
    assert abs(x["agent_rss_bytes"] - rss) < 64 * 2**20
    assert 0.0 <= x["cpu_util"] <= 1.0
    assert 0 < x["mem_used_bytes"] <= psutil.virtual_memory().total


def test_long_runs_keep_a_thinned_history_at_bounded_memory(monkeypatch):
    import agent.telemetry.sampler as sm

    clock = iter(range(10**12, 10**13, 100_000_000))  # a 10 Hz clock, 100 ms a sample
    monkeypatch.setattr(sm, "now_ns", lambda: next(clock))
    monkeypatch.setattr(sm, "RING_SECONDS", 60.0)
    monkeypatch.setattr(sm, "HISTORY_MAX", 100)
    s = make(FIX / "imx8mp", rate_hz=10.0, host=False)
    for _ in range(5000):  # 500 s of samples, taken without the thread
        s._take()
    got = s.samples()
    stamps = [x["t_ns"] for x in got]
    assert stamps == sorted(stamps)
    assert len(s._ring) == 600 and len(got) < 600 + 100  # full-rate last minute + bounded history
    assert stamps[0] - 10**12 <= 4_000_000_000  # still reaches back to the start
    assert s.count == 5000 and s.summary()["samples"] == 5000  # the summary saw every sample
    ring_steps = {b - a for a, b in zip(stamps[-600:], stamps[-599:], strict=False)}
    assert ring_steps == {100_000_000}


def test_host_figures_are_refreshed_at_most_once_per_interval(monkeypatch):
    import agent.telemetry.host as hm

    calls = []
    real = hm.psutil.virtual_memory
    monkeypatch.setattr(hm.psutil, "virtual_memory", lambda: calls.append(1) or real())
    h = HostSource(min_interval_s=0.2)
    first = h.read()
    for _ in range(20):
        assert h.read() == first
    assert len(calls) == 1
    time.sleep(0.25)  # the behaviour: past min_interval_s the cached reading expires
    h.read()
    assert len(calls) == 2
