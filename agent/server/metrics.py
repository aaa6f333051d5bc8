"""Prometheus ``/metrics`` (``--metrics-port``). A custom Collector reads the
sensors fresh on every scrape (no background thread of its own) and asks the
run manager for the agent's state. Names follow Prometheus conventions: an
``edgebench_`` prefix, base units in the name, ``_total`` on counters.

Binds 127.0.0.1 unless told otherwise, like the gRPC port.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.profiles import Profile, resolve
from agent.rootfs import RootFS
from agent.telemetry.sysfs import SysfsReader

log = logging.getLogger("edgebench.metrics")


class EdgebenchCollector(Collector):
    def __init__(self, root: RootFS, profile: Profile, run_manager: Any = None) -> None:
        self.profile = profile
        self.reader = SysfsReader(root, profile)
        self.run_manager = run_manager
        self._lock = threading.Lock()  # scrapes may overlap; the reader's fds are shared

    def _stats(self) -> dict[str, float]:
        rm = self.run_manager
        if rm is None:
            return {}
        try:
            return dict(rm.stats())
        except Exception as exc:  # a scrape must not fail because of the run manager
            log.warning("run manager stats failed: %s", exc)
            return {}

    def collect(self) -> Iterator[Any]:
        with self._lock:
            snap = self.reader.read()
            limits = self.reader.clock_limits()
        p = self.profile

        info = GaugeMetricFamily("edgebench_agent_info", "Agent board and profile", labels=["profile", "soc"])
        info.add_metric([p.name, p.soc], 1.0)
        yield info

        temp = GaugeMetricFamily(
            "edgebench_thermal_zone_celsius", "Thermal zone temperature", labels=["zone", "type"]
        )
        trip = GaugeMetricFamily(
            "edgebench_thermal_trip_celsius", "Thermal zone trip point", labels=["zone", "trip_type"]
        )
        for z in self.reader.zones:
            if z.name in snap["temps_c"]:
                temp.add_metric([z.name, z.type], snap["temps_c"][z.name])
            for t in z.trips:
                trip.add_metric([z.name, t["type"]], t["temp_c"])
        yield temp
        yield trip

        clk = GaugeMetricFamily("edgebench_clock_hertz", "Current clock frequency", labels=["domain"])
        clk_max = GaugeMetricFamily("edgebench_clock_max_hertz", "Maximum clock frequency", labels=["domain"])
        for dom, hz in snap["clocks_hz"].items():
            clk.add_metric([dom], float(hz))
        for dom, lim in limits.items():
            if "max_hz" in lim:
                clk_max.add_metric([dom], float(lim["max_hz"]))
        yield clk
        yield clk_max

        load = GaugeMetricFamily(
            "edgebench_engine_load_ratio", "Accelerator busy ratio (0-1)", labels=["engine"]
        )
        for eng, r in snap["load"].items():
            load.add_metric([eng], r)
        yield load

        volts = GaugeMetricFamily("edgebench_rail_volts", "Power rail bus voltage", labels=["rail"])
        amps = GaugeMetricFamily("edgebench_rail_amperes", "Power rail current", labels=["rail"])
        watts = GaugeMetricFamily("edgebench_rail_watts", "Power rail power", labels=["rail"])
        for rail, r in snap["rails"].items():
            if "v" in r:
                volts.add_metric([rail], r["v"])
            if "a" in r:
                amps.add_metric([rail], r["a"])
            watts.add_metric([rail], r["w"])
        yield volts
        yield amps
        yield watts
        board = [snap["rails"][r]["w"] for r in p.input_rails if r in snap["rails"]]
        if board:
            yield GaugeMetricFamily("edgebench_board_power_watts", "Board input power", value=sum(board))
        if p.budget:
            yield GaugeMetricFamily(
                "edgebench_power_budget_watts", "Power budget of the profile", value=p.budget["budget_w"]
            )

        st = self._stats()
        yield GaugeMetricFamily(
            "edgebench_runs_in_flight", "Runs queued or running", value=float(st.get("runs_in_flight", 0))
        )
        yield CounterMetricFamily(
            "edgebench_inferences", "Inferences run by this agent", value=float(st.get("inferences_total", 0))
        )
        yield GaugeMetricFamily(
            "edgebench_throughput_inferences_per_second",
            "Throughput of the running run(s)",
            value=float(st.get("current_throughput_ips", 0.0)),
        )


class MetricsServer:
    """The HTTP server; ``port`` is the bound one (pass 0 for any free port)."""

    def __init__(self, httpd: Any, thread: threading.Thread, collector: EdgebenchCollector) -> None:
        self._httpd = httpd
        self._thread = thread
        self.collector = collector
        self.host, self.port = httpd.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def shutdown(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self.collector.reader.close()

    close = shutdown


def start_metrics_server(
    port: int,
    root: RootFS,
    profile: str | Profile = "auto",
    run_manager: Any = None,
    addr: str = "127.0.0.1",
) -> MetricsServer:
    from prometheus_client import start_http_server

    prof = profile if isinstance(profile, Profile) else resolve(root, profile)
    registry = CollectorRegistry(auto_describe=False)
    collector = EdgebenchCollector(root, prof, run_manager)
    registry.register(collector)
    httpd, thread = start_http_server(int(port), addr=addr, registry=registry)
    return MetricsServer(httpd, thread, collector)
