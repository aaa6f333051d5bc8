"""The executor's instruments around a real run: a current meter (an INA-CSV
streamer emulated on a pty), the telemetry sampler, and a meter that cannot
be opened."""

from __future__ import annotations

import json

import pytest
from emulators.fixtures import emulators_fixture  # noqa: F401
from emulators.ina_csv import InaCsvEmulator
from emulators.waveform import Spike, Waveform

from agent.power.trace import load_trace
from agent.rpc.edgebench.v1 import agent_pb2 as pb


def _run(stub, spec: dict) -> tuple[list[pb.RunEvent], dict]:
    run_id = stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id
    events = list(stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120))
    rec = stub.GetRun(pb.GetRunRequest(run_id=run_id))
    return events, json.loads(rec.result_json)


def _spec(sha: str, **kw) -> dict:
    spec = {"kind": "bench", "model_sha256": sha, "warmup_s": 0.1, "duration_s": 1.5, "min_iterations": 10,
            "placement": False, "telemetry_rate_hz": 20.0}  # fmt: skip
    spec.update(kw)
    return spec


def test_meter_and_sampler_results_land_in_the_document(agent, push, tiny_onnx_model, emulators):
    sha = push(agent.stub, tiny_onnx_model)
    # 4 ms spikes every 0.1 s, alternately to 1.5 A and to 2.5 A: only the
    # second kind is above --transient-a 2.0 (the default threshold, a few mA
    # above the 0.5 A baseline, would take both)
    spikes = [Spike(0.1 * k, 1.0 if k % 2 else 2.0, 0.004) for k in range(2, 200)]
    wf = Waveform(baseline_a=0.5, bus_v=5.0, spikes=spikes)
    emu = emulators(InaCsvEmulator, wf, rate_hz=2000)
    events, result = _run(
        agent.stub, _spec(sha, meter={"kind": "ina-csv", "port": emu.port, "options": {}}, transient_a=2.0)
    )
    assert result["status"] == "completed", result.get("error")
    power = result["power"]
    assert power["source"] and power["samples"] > 1000
    assert power["mean_a"] == pytest.approx(0.5 + 1.5 * 0.004 / 0.1, rel=0.03)
    assert power["transient_threshold_a"] == 2.0
    # every 2.5 A spike the capture holds whole is one transient, at its time; no 1.5 A spike is
    _, t, _, _ = load_trace(agent.state_dir / "runs" / result["run_id"])
    first_s, last_s = (t[0] - emu.t0_ns) / 1e9, (t[-1] - emu.t0_ns) / 1e9
    high = [s.t_s for s in spikes if s.height_a == 2.0 and first_s <= s.t_s and s.t_s + 0.004 <= last_s]
    assert len(high) >= 5 and len(high) <= power["transient_count"] <= len(high) + 2
    offset_s = (result["t0_ns"] - emu.t0_ns) / 1e9
    for tr in power["transients"]:
        assert tr["peak_a"] == pytest.approx(2.5, rel=0.02)
        assert min(abs(tr["t_s"] + offset_s - h) for h in high + [first_s, last_s]) < 0.003
    assert power["energy_per_inference_j"] > 0
    files = agent.stub.GetRun(pb.GetRunRequest(run_id=result["run_id"])).files
    assert "power.bin" in files and "power.json" in files and "telemetry.jsonl" in files
    tel = result["telemetry"]
    assert tel["sources"] and tel["rate_hz"] == 20.0
    samples = [e for e in events if e.kind == "sample"]
    # telemetry reaches the stream decimated to 1 Hz
    assert 1 <= len(samples) <= 3
    ts = [e.t_ns for e in samples]
    assert all(b - a >= 1_000_000_000 for a, b in zip(ts, ts[1:], strict=False))


def test_a_meter_that_cannot_be_opened_fails_the_run_with_one_line(agent, push, tiny_onnx_model):
    sha = push(agent.stub, tiny_onnx_model)
    events, result = _run(
        agent.stub, _spec(sha, meter={"kind": "ina-csv", "port": "/dev/no-such-tty", "options": {}})
    )
    assert result["status"] == "failed"
    assert "/dev/no-such-tty" in result["error"] and "\n" not in result["error"]
    assert events[-1].kind == "result"
    assert not any(e.kind == "phase" for e in events)  # no worker was started
    # and the agent serves the next run
    _, ok = _run(agent.stub, _spec(sha, duration_s=0.1))
    assert ok["status"] == "completed"
