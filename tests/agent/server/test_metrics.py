"""/metrics over real HTTP: values come from the fixture tree, fresh on each
scrape, and the agent's run state from the run manager."""

from __future__ import annotations

import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.rootfs import RootFS
from agent.server.metrics import start_metrics_server

FIX = Path(__file__).resolve().parents[2] / "fixtures"


class RunManager:
    """The run manager's stats() contract (agent/runs/manager.py)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = {"runs_in_flight": 0, "inferences_total": 0, "current_throughput_ips": 0.0}

    def stats(self) -> dict:
        with self.lock:
            return dict(self.state)


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def orin(tmp_path):
    root = tmp_path / "agx-orin"
    shutil.copytree(FIX / "agx-orin", root, symlinks=True)
    rm = RunManager()
    srv = start_metrics_server(0, RootFS(root), "auto", rm)
    yield root, rm, srv
    srv.shutdown()


def test_metrics_serve_the_fixture_values_with_base_units(orin):
    root, _rm, srv = orin
    m = scrape(srv.url)
    assert m[("edgebench_agent_info", (("profile", "agx-orin"), ("soc", "tegra234")))] == 1.0
    temp = "edgebench_thermal_zone_celsius"
    assert m[(temp, (("type", "CPU-therm"), ("zone", "cpu")))] == 47.343
    assert m[(temp, (("type", "tj-therm"), ("zone", "tj")))] == 47.343
    assert not [k for k in m if k[0] == temp and ("zone", "cv0") in k[1]]  # offline zone not exported
    assert m[("edgebench_thermal_trip_celsius", (("trip_type", "critical"), ("zone", "cpu")))] == 104.5
    assert m[("edgebench_clock_hertz", (("domain", "cpu8"),))] == 2201600 * 1000
    assert m[("edgebench_clock_hertz", (("domain", "gpu"),))] == 306000000
    assert m[("edgebench_clock_max_hertz", (("domain", "gpu"),))] == 1300500000
    assert m[("edgebench_engine_load_ratio", (("engine", "gpu"),))] == pytest.approx(0.127)
    hw = root / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon3"
    mv = int((hw / "in3_input").read_text())
    ma = int((hw / "curr3_input").read_text())
    assert (hw / "in3_label").read_text().strip() == "VIN_SYS_5V0"
    assert m[("edgebench_rail_volts", (("rail", "VIN_SYS_5V0"),))] == pytest.approx(mv / 1000)
    assert m[("edgebench_rail_amperes", (("rail", "VIN_SYS_5V0"),))] == pytest.approx(ma / 1000)
    assert m[("edgebench_rail_watts", (("rail", "VIN_SYS_5V0"),))] == pytest.approx(mv * ma / 1e6)
    rails_w = sum(v for k, v in m.items() if k[0] == "edgebench_rail_watts")
    assert m[("edgebench_board_power_watts", ())] == pytest.approx(rails_w)  # AGX: sum of monitored rails
    assert m[("edgebench_power_budget_watts", ())] == 60.0
    # every metric name follows the convention
    for name, _ in m:
        assert name.startswith("edgebench_")


def test_values_are_read_fresh_on_each_scrape(orin):
    root, _rm, srv = orin
    (root / "sys/devices/virtual/thermal/thermal_zone1/temp").write_text("88125\n")
    (root / "sys/devices/platform/17000000.ga10b/load").write_text("734\n")
    m = scrape(srv.url)
    assert m[("edgebench_thermal_zone_celsius", (("type", "GPU-therm"), ("zone", "gpu")))] == 88.125
    assert m[("edgebench_engine_load_ratio", (("engine", "gpu"),))] == pytest.approx(0.734)


def test_agent_state_runs_inferences_counter_and_throughput(orin):
    _root, rm, srv = orin
    m = scrape(srv.url)
    assert m[("edgebench_runs_in_flight", ())] == 0
    assert m[("edgebench_inferences_total", ())] == 0
    rm.state = {"runs_in_flight": 1, "inferences_total": 12345, "current_throughput_ips": 812.5}
    m = scrape(srv.url)
    assert m[("edgebench_runs_in_flight", ())] == 1
    assert m[("edgebench_inferences_total", ())] == 12345
    assert m[("edgebench_throughput_inferences_per_second", ())] == 812.5
    body = urllib.request.urlopen(srv.url, timeout=10).read().decode()
    assert "# TYPE edgebench_inferences_total counter" in body


def test_binds_loopback_by_default_and_stops_cleanly(orin):
    _root, _rm, srv = orin
    assert srv.host == "127.0.0.1"
    url = srv.url
    srv.shutdown()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_nano_iio_rails_and_no_run_manager():
    srv = start_metrics_server(0, RootFS(FIX / "jetson-nano"), "auto", None)
    try:
        m = scrape(srv.url)
    finally:
        srv.shutdown()
    assert m[("edgebench_rail_watts", (("rail", "POM_5V_IN"),))] == pytest.approx(2.524)
    assert m[("edgebench_board_power_watts", ())] == pytest.approx(2.524)  # POM_5V_IN is the input
    assert m[("edgebench_runs_in_flight", ())] == 0
    assert m[("edgebench_thermal_zone_celsius", (("type", "PMIC-Die"), ("zone", "pmic")))] == 100.0


def test_grafana_dashboard_queries_only_metrics_the_agent_exports(orin):
    import json
    import re

    _root, _rm, srv = orin
    exported = {name for name, _ in scrape(srv.url)}
    dash = json.loads((Path(__file__).resolve().parents[3] / "docs/grafana-dashboard.json").read_text())
    queried = set()
    for panel in dash["panels"]:
        for t in panel["targets"]:
            queried |= set(re.findall(r"edgebench_[a-z_]+", t["expr"]))
    assert queried and queried <= exported, queried - exported
