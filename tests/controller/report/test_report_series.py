"""Reports drawn from the series a result carries (agent/runs/series.py): a
result from the results DB alone, with no run files, shows the timeline and
the current draw; an older result without series, given its run directory,
draws the same panels from the files."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
from scenario.synthetic import T0, throttling_board

from agent import rundir
from agent.power.base import SAMPLE_DTYPE
from agent.runs import series as run_series
from agent.soak.analysis import analyze_soak
from agent.spec import RunSpec, SoakSpec
from controller.cli import main
from controller.db import ResultsDB
from controller.report import power_plot
from controller.report.timeline import collect_series, series_of, timeline_png

TIMELINE_ALT = "throughput, temperatures, clocks and power against time"
CURRENT_ALT = "current against time"
LATENCY_ALT = "latency distribution: CDF and histogram of the measured iterations"
METER_HZ = 1000
SPIKE_S, SPIKE_A, SPIKE_MS = 120.0, 0.9, 5.0


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.text = {}, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs[a["alt"]] = base64.b64decode(a["src"].split(",", 1)[1])

    def handle_data(self, data):
        self.text.append(data)


def page(path):
    p = Images()
    p.feed(path.read_text(encoding="utf-8"))
    return p.imgs, " ".join(" ".join(p.text).split())


def red_pixels(png: bytes) -> int:
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format="png")
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 0.6) & (g < 0.35) & (b < 0.35)).sum())


def meter_trace(duration_s: float):
    """rundir.load_trace's tuple for a host-clocked meter: 0.2 A with one spike.
    Values are float32, as power.bin stores them."""
    n = int(duration_s * METER_HZ)
    t_ns = T0 + np.arange(n, dtype=np.int64) * (1_000_000_000 // METER_HZ)
    cur = np.full(n, 0.2, dtype=np.float32)
    a = int(SPIKE_S * METER_HZ)
    cur[a : a + int(SPIKE_MS)] = SPIKE_A
    bus = np.full(n, 5.0, dtype=np.float32)
    meta = {"source": "ina-csv:fake", "host_clock": True, "start_ns": T0}
    return meta, t_ns, cur.astype(np.float64), bus.astype(np.float64)


def iterations(duration_s: float, rate_hz: int = 20) -> np.ndarray:
    n = int(duration_s * rate_hz)
    starts = T0 + 1_000_000_000 + np.arange(n, dtype=np.int64) * (1_000_000_000 // rate_hz)
    return np.stack([starts, starts + 30_000_000, np.ones(n, dtype=np.int64)], axis=1)


def power_doc() -> dict:
    transient = {
        "t_s": SPIKE_S,
        "peak_a": SPIKE_A,
        "duration_ms": SPIKE_MS,
        "offset_from_inference_start_ms": 1.0,
    }
    return {
        "source": "ina-csv:fake",
        "mean_a": 0.2,
        "peak_a": SPIKE_A,
        "transients": [transient],
        "transient_threshold_a": 0.5,
    }


def soak_run(duration_s: int = 600):
    """(result without series, what the agent held: windows, iterations, samples, trace)."""
    raw_windows, samples = throttling_board(duration_s=duration_s, window_s=10, drop_at=300.0)
    for s in samples:  # a rail, so the power panel comes from telemetry
        s["rails"] = {"VDD_IN": {"w": 8.0 if s["t_ns"] < T0 + 300_000_000_000 else 6.5}}
    soak = analyze_soak(
        raw_windows, samples, RunSpec(kind="soak", model_sha256="a" * 64, soak=SoakSpec(window_s=10))
    )
    result = {
        "schema": "edgebench.result/v1",
        "run_id": "20261123T200000000Z-5e71e5",
        "kind": "soak",
        "status": "completed",
        "t0_ns": T0,
        "model": {"name": "det.onnx", "sha256": "a" * 64},
        "agent": {"hostname": "orin"},
        "soak": soak,
        "power": power_doc(),
    }
    return result, (soak["windows"], iterations(duration_s), samples, meter_trace(duration_s))


def with_series(result: dict, held: tuple) -> dict:
    windows, it, samples, trace = held
    return {**result, "series": run_series.build(T0, windows, it, samples, trace)}


def write_run_dir(d, held) -> None:
    """The run's files as the agent writes them (rundir.py's names and formats)."""
    _, it, samples, (meta, t_ns, cur, bus) = held
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / rundir.ITERATIONS, it)
    with open(d / rundir.TELEMETRY, "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in samples)
    rec = np.empty(t_ns.shape[0], dtype=SAMPLE_DTYPE)
    rec["t_dev_ns"], rec["current_a"], rec["bus_v"] = t_ns, cur, bus
    rec.tofile(d / rundir.POWER_BIN)
    (d / rundir.POWER_JSON).write_text(json.dumps(meta))


def test_report_from_the_db_alone_draws_the_timeline_and_the_current_draw(tmp_path, capsys):
    result, held = soak_run()
    url = f"sqlite:///{tmp_path / 'results.db'}"
    db = ResultsDB(url)
    db.store(with_series(result, held))
    db.close()
    out = tmp_path / "report.html"
    assert main(["report", result["run_id"], "--db", url, "--html", str(out)]) == 0
    imgs, text = page(out)
    # the run's iterations also draw the latency distribution
    assert set(imgs) == {TIMELINE_ALT, CURRENT_ALT, LATENCY_ALT}
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in imgs.values())
    h = int.from_bytes(imgs[TIMELINE_ALT][20:24], "big")
    assert h >= 800  # throughput, temperatures, clocks and power: four stacked panels
    assert "Series stored with the result: throughput every 10 s, telemetry every 1 s." in text
    assert re.search(
        r"min/max per 1 s, stored with the result; raw samples stay in the run's power\.bin", text
    )
    # the result's transient is marked on the envelope
    no_transients = {**result, "power": {**power_doc(), "transients": []}}
    plain = power_plot.power_plot_png(with_series(no_transients, held))
    assert red_pixels(imgs[CURRENT_ALT]) > 0 and red_pixels(plain) == 0


def test_a_result_without_a_current_series_has_no_current_draw(tmp_path):
    result, (windows, it, samples, _) = soak_run(120)
    doc = with_series(result, (windows, it, samples, None))
    url = f"sqlite:///{tmp_path / 'results.db'}"
    db = ResultsDB(url)
    db.store(doc)
    db.close()
    out = tmp_path / "report.html"
    assert main(["report", doc["run_id"], "--db", url, "--html", str(out)]) == 0
    imgs, text = page(out)
    assert set(imgs) == {TIMELINE_ALT, LATENCY_ALT} and "Current draw" not in text


def test_series_from_the_files_and_from_the_result_give_the_same_panels(tmp_path):
    result, held = soak_run()
    run_dir = tmp_path / "run"
    write_run_dir(run_dir, held)
    db = ResultsDB(f"sqlite:///{tmp_path / 'results.db'}")
    db.store(with_series(result, held))
    stored = db.get(result["run_id"])  # through JSON, as `report RUN_ID` reads it
    db.close()

    from_files, source = series_of(result, run_dir)
    assert source == "built from the run's files" and series_of(stored)[1] == "stored with the result"
    assert from_files == stored["series"]  # the files give what the agent held, current envelope too
    panels_files, panels_result = collect_series(result, run_dir), collect_series(stored)
    assert panels_files == panels_result
    assert set(panels_result) == {"throughput", "temps_c", "clocks_mhz", "power_w"}
    assert all(panels_result[k] for k in panels_result) and "VDD_IN" in panels_result["power_w"]
    events = result["soak"]["throttle_events"]
    assert timeline_png(panels_files, events) == timeline_png(panels_result, events)


def test_bench_series_bin_iterations_the_same_from_files_and_result(tmp_path):
    it = iterations(30, rate_hz=200)
    result = {"run_id": "r1", "kind": "bench", "status": "completed", "t0_ns": T0}
    np.save(tmp_path / rundir.ITERATIONS, it)
    stored = json.loads(json.dumps({**result, "series": run_series.build(T0, [], it, [])}))
    a, b = collect_series(result, tmp_path), collect_series(stored)
    assert a == b
    ts, ips = b["throughput"]["inferences/s (1 s bins)"]
    assert ts[0] == 2.5 and all(v == 200 for v in ips)


def test_current_draw_uses_the_raw_trace_when_the_run_directory_has_it(tmp_path):
    result, held = soak_run(200)
    run_dir = tmp_path / "run"
    write_run_dir(run_dir, held)
    doc = with_series(result, held)
    assert power_plot.source(doc, run_dir) == power_plot.TRACE
    assert power_plot.source(doc) == power_plot.SERIES
    assert power_plot.source(result) is None and power_plot.power_plot_png(result) is None
    raw = power_plot.power_plot_png(doc, run_dir)
    assert raw[:4] == b"\x89PNG" and raw != power_plot.power_plot_png(doc)


def test_a_damaged_capture_is_named_and_the_rest_of_the_report_stays(tmp_path):
    from controller.report.html import write_html

    result, held = soak_run(120)
    run_dir = tmp_path / "run"
    write_run_dir(run_dir, held)
    (run_dir / rundir.POWER_JSON).write_text('{"source": "ina-csv:fake", "segm')  # torn by a kill
    imgs, text = page(write_html(result, run_dir, tmp_path / "r.html"))
    assert set(imgs) == {TIMELINE_ALT, LATENCY_ALT}
    assert "Current draw power capture unreadable:" in text and "Soak" in text
