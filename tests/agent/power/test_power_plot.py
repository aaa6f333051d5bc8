"""The report's power figure: real PNG, spikes survive decimation, transients marked."""

from __future__ import annotations

import io
import shutil
import time

import numpy as np
from emulators.fixtures import emulators_fixture  # noqa: F401  (the `emulators` fixture)
from emulators.ina_csv import InaCsvEmulator
from emulators.waveform import Spike, Waveform

from agent.power.analysis import analyze
from agent.power.capture import Capture
from agent.power.trace import load_trace
from agent.spec import MeterSpec
from controller.report.power_plot import envelope, power_plot_png, render, render_run


def red_pixels(png: bytes) -> int:
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format="png")
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 0.6) & (g < 0.35) & (b < 0.35)).sum())


def test_envelope_keeps_every_spike():
    t = np.arange(1_000_000) / 100_000.0
    y = np.full(t.shape, 0.1)
    y[123_457] = 2.0  # one sample
    tt, yy = envelope(t, y, buckets=1000)
    assert yy.shape[0] == 2000 and yy.max() == 2.0 and yy.min() == 0.1


def test_render_marks_transients_and_is_a_png():
    t = np.arange(200_000) / 100_000.0
    y = 0.1 + np.zeros_like(t)
    y[50_000:50_400] = 0.9
    tr = [{"t_s": 0.5, "peak_a": 0.9, "duration_ms": 4.0, "offset_from_inference_start_ms": 1.0}]
    png = render(t, y, [(0.49, 0.53), (0.6, 0.64)], tr, threshold_a=0.2)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    plain = render(t, y, [(0.49, 0.53)], [], threshold_a=0.2)
    assert red_pixels(png) > 50 and red_pixels(plain) == 0


def test_render_run_from_a_capture(emulators, tmp_path):
    wf = Waveform(baseline_a=0.2, spikes=[Spike(0.2, 0.8, 0.01)])
    emu = emulators(InaCsvEmulator, wf, rate_hz=2000)
    cap = Capture(MeterSpec("ina-csv", emu.port), tmp_path)
    cap.start()
    time.sleep(0.4)  # the capture runs in real time: this span is the run
    cap.stop()
    s = emu.t0_ns + int(0.19e9)
    np.save(tmp_path / "iterations.npy", np.array([[s, s + int(0.03e9), 1]], dtype=np.int64))
    power = analyze(load_trace(tmp_path), np.load(tmp_path / "iterations.npy"), run_start_ns=emu.t0_ns)
    assert power["transient_count"] == 1
    png = render_run(tmp_path, power, run_start_ns=emu.t0_ns)
    assert png[:4] == b"\x89PNG" and red_pixels(png) > 50


def test_html_report_hook_draws_from_fetched_files(emulators, tmp_path):
    wf = Waveform(baseline_a=0.2, spikes=[Spike(0.1, 0.8, 0.01)])
    emu = emulators(InaCsvEmulator, wf, rate_hz=2000)
    run_dir = tmp_path / "run"
    cap = Capture(MeterSpec("ina-csv", emu.port), run_dir)
    cap.start()
    time.sleep(0.3)  # the capture runs in real time: this span is the run
    cap.stop()
    power = analyze(load_trace(run_dir), None, run_start_ns=emu.t0_ns)
    png = power_plot_png({"power": power, "t0_ns": emu.t0_ns}, run_dir)
    assert png is not None and png[:4] == b"\x89PNG" and red_pixels(png) > 50
    half = tmp_path / "half"  # power.bin without its power.json
    half.mkdir()
    shutil.copy(run_dir / "power.bin", half / "power.bin")
    assert power_plot_png({"power": power}, half) is None
