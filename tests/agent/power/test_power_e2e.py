"""The real agent (``edgebench-agent serve --meter KIND:/dev/pts/N``, real
worker, real ONNX Runtime) against meter emulators on ptys: power{} in the
result matches the emulator's waveform; an unplugged meter loses nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest
from emulators.fixtures import emulators_fixture  # noqa: F401  (the `emulators` fixture)
from emulators.ina_csv import InaCsvEmulator
from emulators.ppk2 import Ppk2Emulator
from emulators.scpi import ScpiEmulator
from emulators.waveform import Spike, Waveform

from agent.rpc.edgebench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.serial  # timing against the wall clock: run alone (Makefile)

ROOT_AM62A = "tests/fixtures/am62a"  # profile am62a: 5 V supply, 15 W budget
SPIKE_EVERY_S, SPIKE_W_S, SPIKE_A = 0.1, 0.003, 0.6


def run_bench(stub, sha: str, **kw) -> tuple[pb.RunRecord, dict]:
    spec = {"kind": "bench", "model_sha256": sha, "model_name": "tiny", "warmup_s": 0.2, "duration_s": 1.0,
            "min_iterations": 10, "placement": False, "telemetry_rate_hz": 20.0}  # fmt: skip
    spec.update(kw)
    run_id = stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id
    for _ in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120):
        pass
    rec = stub.GetRun(pb.GetRunRequest(run_id=run_id))
    return rec, json.loads(rec.result_json)


def test_agent_with_ppk2_meter_reports_power(emulators, agent_process, push, tiny_onnx_model):
    spikes = [Spike(0.05 + k * SPIKE_EVERY_S, SPIKE_A, SPIKE_W_S) for k in range(100)]
    wf = Waveform(baseline_a=0.1, noise_a=0.001, spikes=spikes)
    emu = emulators(Ppk2Emulator, wf)
    meter_args = ["--meter", f"ppk2:{emu.port}", "--meter-opt", "vdd_mv=3300"]
    ap = agent_process("--profile", "am62a", "--sysfs-root", ROOT_AM62A, *meter_args)
    sha = push(ap.stub, tiny_onnx_model)
    rec, res = run_bench(ap.stub, sha)
    assert rec.status == "completed", res.get("error")
    p = res["power"]
    assert p["source"] == f"ppk2:{emu.port}"
    assert p["dropped_samples"] == 0 and p["partial"] is False
    assert p["sample_rate_hz"] == pytest.approx(100_000, rel=0.001)
    assert p["peak_a"] == pytest.approx(0.7, rel=0.02)
    assert (
        p["peak_w"] == pytest.approx(0.7 * 5.0, rel=0.02)
        and p["budget_w"] == 15.0
        and p["over_budget"] is False
    )
    # every spike the capture saw is one transient of the right width
    span_s = p["samples"] / 100_000
    full = sum(1 for s in spikes if s.t_s + s.width_s <= span_s)
    assert full <= p["transient_count"] <= full + 1
    for tr in p["transients"][:-1]:
        assert tr["peak_a"] == pytest.approx(0.7, rel=0.02)
        assert tr["duration_ms"] == pytest.approx(3.0, abs=0.05)
        assert tr["offset_from_inference_start_ms"] is not None
    # energy per inference: the waveform's integral over the measured window
    it = np.load(ap.state_dir / "runs" / rec.run_id / "iterations.npy")
    m = it[it[:, 2] == 1]
    w0, w1 = (m[:, 0].min() - emu.t0_ns) / 1e9, (m[:, 1].max() - emu.t0_ns) / 1e9
    assert p["energy_per_inference_j"] == pytest.approx(5.0 * wf.integral(w0, w1) / m.shape[0], rel=0.02)
    assert p["first_inferences_peak_a"] is not None and p["steady_peak_a"] == pytest.approx(0.7, rel=0.02)
    assert "power.bin" in rec.files and "power.json" in rec.files

    # the HTML report draws the current trace with its transients
    from controller.report.html import write_html

    run_dir = ap.state_dir / "runs" / rec.run_id
    page = write_html(res, run_dir, run_dir.parent / "report.html").read_text()
    assert "Current draw" in page and page.count("data:image/png;base64,") >= 2


def test_agent_with_scpi_meter_flag_reports_power(emulators, agent_factory, push, tiny_onnx_model):
    wf = Waveform(baseline_a=0.4, spikes=[Spike(k * 0.4, 0.5, 0.15) for k in range(1, 20)])
    emu = emulators(ScpiEmulator, wf, dialect="owon")
    agent = agent_factory(
        meter=f"scpi:{emu.port}", meter_opts=["dialect=owon"], profile="am62a", sysfs_root=ROOT_AM62A
    )
    sha = push(agent.stub, tiny_onnx_model)
    rec, res = run_bench(agent.stub, sha, duration_s=1.5)
    assert rec.status == "completed", res.get("error")
    p = res["power"]
    assert p["source"] == f"scpi:{emu.port}" and p["samples"] > 20 and p["partial"] is False
    assert p["peak_a"] == pytest.approx(0.9, rel=0.02) and p["transient_count"] >= 2
    assert p["mean_w"] is not None and p["voltage_source"] == "profile"
    assert {"*IDN?", "CONF:CURR:DC", "RATE F", "MEAS?"} <= set(emu.commands)


def test_meter_unplugged_mid_run_loses_nothing_else(emulators, agent, push, tiny_onnx_model):
    sha = push(agent.stub, tiny_onnx_model)
    # the streamer runs from power-on: times are from here, the run opens it soon after
    wf = Waveform(baseline_a=0.3, bus_v=5.1, spikes=[Spike(0.5, 0.5, 0.05)])
    emu = emulators(InaCsvEmulator, wf, rate_hz=2000, disconnect_at_s=0.9)
    meter = {"kind": "ina-csv", "port": emu.port, "options": {}}
    rec, res = run_bench(agent.stub, sha, meter=meter, duration_s=1.2)
    assert rec.status == "completed" and res["error"] is None
    assert res["iterations"] >= 10 and res["latency_ms"]["p50"] > 0 and "telemetry" in res
    p = res["power"]
    assert p["partial"] is True and len(p["gaps"]) == 1 and "meter lost" in p["gaps"][0]["reason"]
    assert p["peak_a"] == pytest.approx(0.8, rel=0.02) and p["voltage_source"] == "meter"


def test_meter_port_that_does_not_open_fails_the_run_as_bad_input(agent, push, tiny_onnx_model, tmp_path):
    sha = push(agent.stub, tiny_onnx_model)
    meter = {"kind": "ppk2", "port": str(tmp_path / "ttyACM7"), "options": {}}
    rec, res = run_bench(agent.stub, sha, meter=meter)
    assert rec.status == "failed" and res["error_code"] == "bad_input"
    assert "cannot open meter port" in res["error"] and "\n" not in res["error"]


def test_meter_cross_checked_against_the_jetson_input_rail(emulators, agent_process, push, tiny_onnx_model):
    # orin-nano fixture: INA3221 VDD_IN reads 5.056 V x 0.868 A = 4.39 W
    wf = Waveform(baseline_a=0.868, noise_a=0.002, bus_v=5.056, spikes=[Spike(0.5, 0.3, 0.005)])
    emu = emulators(InaCsvEmulator, wf, rate_hz=2000)
    ap = agent_process("--profile", "orin-nano", "--sysfs-root", "tests/fixtures/orin-nano")
    sha = push(ap.stub, tiny_onnx_model)
    rec, res = run_bench(ap.stub, sha, meter={"kind": "ina-csv", "port": emu.port, "options": {}})
    assert rec.status == "completed", res.get("error")
    cc = res["power"]["cross_check"]
    assert cc["rail"] == "VDD_IN" and cc["board_mean_w"] == pytest.approx(5.056 * 0.868, rel=0.001)
    assert abs(cc["diff_pct"]) < 2 and cc["agree"] is True


def run_soak(stub, sha: str, on_window=None, **kw) -> tuple[list[dict], dict]:
    """A short soak; ``on_window(n)`` is called as the n-th window is streamed."""
    spec = {"kind": "soak", "model_sha256": sha, "model_name": "tiny", "warmup_s": 0.2, "duration_s": 2.5,
            "min_iterations": 1, "placement": False, "telemetry_rate_hz": 20.0,
            "soak": {"window_s": 0.5}}  # fmt: skip
    spec.update(kw)
    run_id = stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id
    streamed = []
    for ev in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120):
        if ev.kind == "window":
            streamed.append(json.loads(ev.payload_json))
            if on_window is not None:
                on_window(len(streamed))
    return streamed, json.loads(stub.GetRun(pb.GetRunRequest(run_id=run_id)).result_json)


def test_soak_windows_take_mean_power_from_the_meter(emulators, agent_factory, push, tiny_onnx_model):
    # am62a: no on-board rail monitor, so the meter is the only power source.
    # A 0.3 s step of +0.5 A every 0.8 s: each 0.5 s window holds a different share of it.
    wf = Waveform(baseline_a=0.4, bus_v=5.0, spikes=[Spike(0.8 * k, 0.5, 0.3) for k in range(40)])
    agent = agent_factory(profile="am62a", sysfs_root=ROOT_AM62A)
    sha = push(agent.stub, tiny_onnx_model)
    emu = emulators(InaCsvEmulator, wf, rate_hz=2000)
    streamed, res = run_soak(agent.stub, sha, meter={"kind": "ina-csv", "port": emu.port, "options": {}})
    assert res["status"] == "completed", res.get("error")
    soak = res["soak"]
    windows = soak["windows"]
    assert len(windows) >= 4 and soak["power_source"] == "meter"
    expected = []
    for w in windows:
        a = (res["t0_ns"] - emu.t0_ns) / 1e9 + w["t_s"]
        expected.append(5.0 * wf.integral(a, a + w["dur_s"]) / w["dur_s"])
        assert w["power_source"] == "meter"
    assert max(expected) - min(expected) > 0.3  # the windows really differ
    assert [w["power_w"] for w in windows] == pytest.approx(expected, rel=0.02)
    # what was streamed (journaled) carries the same figures
    assert [w["power_w"] for w in streamed] == [w["power_w"] for w in windows]
    # and the HTML report's power panel has them
    from controller.report.timeline import collect_series

    series = collect_series(res)["power_w"]
    assert series["window mean"][1] == pytest.approx([w["power_w"] for w in windows])


def test_agx_orin_meter_cross_checked_against_summed_input_rails(
    emulators, agent_factory, push, tiny_onnx_model
):
    # agx-orin fixture: no single module-input rail; the profile's input_rails
    # read 3.190368 + 0.802368 + 3.625792 + 0.496704 = 8.115232 W. The meter sees 8.40 W.
    board_w, meter_w = 8.115232, 8.40
    wf = Waveform(baseline_a=meter_w / 19.0, bus_v=19.0)
    agent = agent_factory(profile="agx-orin", sysfs_root="tests/fixtures/agx-orin")
    sha = push(agent.stub, tiny_onnx_model)
    emu = emulators(InaCsvEmulator, wf, rate_hz=2000)
    # the meter is unplugged after the second window: later windows fall back to the rails
    streamed, res = run_soak(
        agent.stub,
        sha,
        on_window=lambda n: n == 2 and emu.dev.unplug(),
        meter={"kind": "ina-csv", "port": emu.port, "options": {}},
    )
    assert res["status"] == "completed", res.get("error")
    cc = res["power"]["cross_check"]
    assert cc["rails"] == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]
    assert cc["board_mean_w"] == pytest.approx(board_w, rel=1e-4)
    assert cc["meter_mean_w"] == pytest.approx(meter_w, rel=0.01)
    assert cc["diff_pct"] == pytest.approx((meter_w - board_w) / board_w * 100, abs=1.0) and cc["agree"]
    windows = res["soak"]["windows"]
    assert res["soak"]["power_source"] == "mixed" and len(windows) >= 4
    assert [w["power_source"] for w in windows[:2]] == ["meter", "meter"]
    assert [w["power_w"] for w in windows[:2]] == pytest.approx([meter_w] * 2, rel=0.01)
    assert windows[-1]["power_source"] == "board" and windows[-1]["power_w"] == pytest.approx(
        board_w, rel=1e-3
    )


def test_meter_behind_an_rfc2217_server(emulators, agent, push, tiny_onnx_model):
    from emulators.rfc2217 import Rfc2217Server

    wf = Waveform(baseline_a=0.3, bus_v=5.0, spikes=[Spike(0.25 * k, 0.5, 0.02) for k in range(1, 80)])
    sha = push(agent.stub, tiny_onnx_model)
    emu = emulators(InaCsvEmulator, wf, rate_hz=1000)
    with Rfc2217Server(emu.port) as srv:
        rec, res = run_bench(agent.stub, sha, meter={"kind": "ina-csv", "port": srv.url, "options": {}})
    assert rec.status == "completed", res.get("error")
    assert srv.settings["baudrate"] == 921600  # set by the agent over RFC 2217, not a raw socket
    p = res["power"]
    assert p["source"] == f"ina-csv:{srv.url}" and p["partial"] is False and p["samples"] > 500
    # (the client clears its queue up to 50 ms after the start-of-run purge is
    # answered, dropping fresh lines with the stale: a gap counted as dropped, so
    # the rate stays right)
    assert p["sample_rate_hz"] == pytest.approx(1000, rel=0.01)
    assert p["peak_a"] == pytest.approx(0.8, rel=0.02) and p["voltage_source"] == "meter"
    assert all(tr["peak_a"] == pytest.approx(0.8, rel=0.02) for tr in p["transients"])
    assert len(p["transients"]) >= 3  # the all() checks below must have something to check
    assert all(tr["duration_ms"] == pytest.approx(20.0, abs=1.5) for tr in p["transients"][1:-1])  # ends cut
    it = np.load(agent.state_dir / "runs" / rec.run_id / "iterations.npy")
    m = it[it[:, 2] == 1]
    w0, w1 = (m[:, 0].min() - emu.t0_ns) / 1e9, (m[:, 1].max() - emu.t0_ns) / 1e9
    assert p["mean_a"] == pytest.approx(wf.integral(w0, w1) / (w1 - w0), rel=0.02)
