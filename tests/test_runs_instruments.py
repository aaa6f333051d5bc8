"""The executor's instruments around a real run: a current meter (an INA-CSV
streamer emulated on a pty), the telemetry sampler, and a meter that cannot
be opened."""

from __future__ import annotations

import json

import pytest
from emulators.fixtures import emulators_fixture  # noqa: F401
from emulators.ina_csv import InaCsvEmulator
from emulators.waveform import Waveform

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
    emu = emulators(InaCsvEmulator, Waveform(baseline_a=0.5, bus_v=5.0), rate_hz=2000)
    events, result = _run(
        agent.stub, _spec(sha, meter={"kind": "ina-csv", "port": emu.port, "options": {}}, transient_a=2.0)
    )
    assert result["status"] == "completed", result.get("error")
    power = result["power"]
    assert power["source"] and power["samples"] > 1000
    assert power["mean_a"] == pytest.approx(0.5, rel=0.05)
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
