"""The HTML report: one self-contained file, plots embedded as PNG, soak
figures, throttle events, placement and gates, also with files missing."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
from scenario.synthetic import T0, throttling_board

from agent.soak.analysis import analyze_soak, soak_gate
from agent.spec import RunSpec, SoakSpec
from controller.report.html import write_html
from controller.report.timeline import collect_series


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.scripts, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if tag == "link" or (tag == "a" and "href" in a):
            self.links.append(a)
        if tag == "script":
            self.scripts.append(a)

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    c = Collector()
    c.feed(path.read_text(encoding="utf-8"))
    return c, " ".join(c.text)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def soak_result(tmp_path, duration_s=600, drop_at=300.0):
    windows, samples = throttling_board(duration_s=duration_s, window_s=10, drop_at=drop_at)
    spec = RunSpec(
        kind="soak",
        model_sha256="a" * 64,
        model_name="det.onnx",
        soak=SoakSpec(window_s=10, target_ips=20.0, enclosure="IP67 box", ambient_c=35),
    )
    soak = analyze_soak(windows, samples, spec)
    tele = tmp_path / "telemetry.jsonl"
    with open(tele, "w") as f:
        for s in samples:
            f.write(json.dumps(s) + "\n")
        f.write('{"t_ns": 12')  # a torn last line, as after a kill
    result = {
        "schema": "edgebench.result/v1",
        "run_id": "20261123T200000000Z-abcdef",
        "kind": "soak",
        "status": "completed",
        "t0_ns": T0,
        "model": {"name": "det.onnx", "sha256": "a" * 64},
        "throughput_ips": 21.3,
        "latency_ms": {"p50": 40.1, "p99": 55.2},
        "iterations": 12000,
        "agent": {"hostname": "orin", "profile": "agx-orin", "board": "Jetson AGX Orin <dev kit>"},
        "soak": soak,
        "gates": [soak_gate(soak)],
        "placement": {
            "runtime": "onnxruntime",
            "total_nodes": 3,
            "nodes_by_device": {"CPU": 1, "GPU": 2},
            "accelerated_nodes": 2,
            "partitions": 2,
            "cpu_time_share": 0.41,
            "fallback": True,
            "fallback_nodes": [
                {"name": "nms_0", "op_type": "NonMaxSuppression", "device": "CPU", "time_share": 0.41}
            ],
            "nodes": [
                {"name": "conv_0", "op_type": "Conv", "device": "CUDA", "time_share": 0.5},
                {"name": "nms_0", "op_type": "NonMaxSuppression", "device": "CPU", "time_share": 0.41},
                {"name": "head_0", "op_type": "Gemm", "device": "CUDA", "time_share": 0.09},
            ],
        },
        "telemetry": {
            "sources": ["sysfs"],
            "rate_hz": 10.0,
            "summary": {
                "temps_c": {"tj": {"min": 50, "mean": 80, "max": 97}},
                "clocks_hz": {"gpu": {"min": 828e6, "max": 1300e6}},
            },
        },
    }
    return result, tmp_path


def test_soak_report_is_self_contained_with_plots_events_and_placement(tmp_path):
    result, run_dir = soak_result(tmp_path)
    out = write_html(result, run_dir, tmp_path / "r" / "report.html")
    c, text = parse(out)
    # self-contained: no scripts, stylesheets or remote images; every image inline
    assert c.scripts == [] and c.links == []
    assert c.imgs and all(i["src"].startswith("data:image/png;base64,") for i in c.imgs)
    w, h = png_size(base64.b64decode(c.imgs[0]["src"].split(",", 1)[1]))
    assert w >= 600 and h >= 600  # four stacked panels
    sentence = "throughput fell 38% (28.0 → 17.4 ips) from 5m00s when gpu clock dropped 1300→828 MHz"
    assert sentence + " with tj at 97 °C" in text
    assert "throttled" in text and "IP67 box" in text and "missed" in text
    # the throttle event row: time, domain, from, to, zone, temperature
    assert re.search(r"300\.0\s+gpu\s+1300\s+828\s+tj\s+97\.0", text)
    assert "nms_0" in text and "NonMaxSuppression" in text and "41.0 %" in text
    # the per-op table: every node in graph order, the fallback one marked
    assert re.search(
        r"0\s+conv_0\s+Conv\s+CUDA\s+50.0 %\s+1\s+nms_0\s+NonMaxSuppression\s+CPU\s+41.0 %", text
    )
    assert '<span class="bad">CPU</span>' in out.read_text()
    assert "soak_target" in text and "FAIL" in text
    # escaped, not injected
    assert "Jetson AGX Orin <dev kit>" in text and "<dev kit>" not in out.read_text().replace(
        "&lt;dev kit&gt;", ""
    )


def test_series_share_the_run_start_axis(tmp_path):
    result, run_dir = soak_result(tmp_path)
    series = collect_series(result, run_dir)
    ts, mhz = series["clocks_mhz"]["gpu"]
    # the clock falls at 300 s on the same axis the windows use
    assert ts[mhz.index(828.0)] == 300.0
    wt, ips = series["throughput"]["inferences/s (window)"]
    assert wt[0] == 5.0 and ips[29] == 28.0 and ips[30] < 18.0
    assert set(series["temps_c"]) == {"tj", "cpu", "gpu"}
    # no rails in the samples: the windows' mean power fills the power panel
    pt, pw = series["power_w"]["window mean"]
    assert pw[0] == 30.0 and pw[-1] == 22.0


def test_bench_report_without_telemetry_bins_iterations(tmp_path):
    # 2000 iterations at 200/s from t=1 s, measured phase = 1
    starts = T0 + 1_000_000_000 + np.arange(2000, dtype=np.int64) * 5_000_000
    it = np.stack([starts, starts + 4_000_000, np.ones(2000, dtype=np.int64)], axis=1)
    np.save(tmp_path / "iterations.npy", it)
    result = {
        "run_id": "r1",
        "kind": "bench",
        "status": "failed",
        "error": "worker died: SIGSEGV",
        "t0_ns": T0,
        "model": {"name": "m.onnx"},
    }
    series = collect_series(result, tmp_path)  # iterations.npy and no telemetry.jsonl
    ts, ips = series["throughput"]["inferences/s (1 s bins)"]
    assert all(abs(v - 200) <= 1 for v in ips) and ts[0] == 2.5
    out = write_html(result, tmp_path, tmp_path / "bench.html")
    c, text = parse(out)
    assert "worker died: SIGSEGV" in text and "Soak" not in text
    # the timeline, and the distribution of the latencies it did measure
    assert [i["alt"].split(":")[0] for i in c.imgs] == [
        "latency distribution",
        "throughput, temperatures, clocks and power against time",
    ]


def test_report_of_a_result_with_nothing_but_ids(tmp_path):
    out = write_html({"run_id": "x", "status": "interrupted"}, None, tmp_path / "x.html")
    c, text = parse(out)
    assert c.imgs == [] and "interrupted" in text
