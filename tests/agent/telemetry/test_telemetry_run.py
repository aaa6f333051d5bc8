"""End to end: an agent over the AGX Orin fixture tree runs a real ONNX Runtime
benchmark; the result carries the telemetry summary and the board's profile,
the series lands in telemetry.jsonl, and /metrics counts the inferences."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.rpc.edgebench.v1 import agent_pb2 as pb

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def metrics(url: str) -> dict:
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }


def test_bench_result_carries_telemetry_and_metrics_count_inferences(agent_factory, push, tiny_onnx_model):
    a = agent_factory(sysfs_root=str(FIX / "agx-orin"), metrics_port=0)
    url = a.server._metrics.url
    assert metrics(url)[("edgebench_inferences_total", ())] == 0
    sha = push(a.stub, tiny_onnx_model)
    spec = {"kind": "bench", "model_sha256": sha, "warmup_s": 0.1, "duration_s": 1.0, "min_iterations": 10,
            "placement": False, "telemetry_rate_hz": 20.0}  # fmt: skip
    run_id = a.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id
    list(a.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120))
    rec = a.stub.GetRun(pb.GetRunRequest(run_id=run_id))
    result = json.loads(rec.result_json)
    assert result["status"] == "completed", result.get("error")
    assert result["agent"]["profile"] == "agx-orin" and result["agent"]["soc"] == "tegra234"
    tel = result["telemetry"]
    assert tel["rate_hz"] == 20.0 and tel["sources"][0] == "sysfs"
    summ = tel["summary"]
    assert summ["temps_c"]["tj"] == {"min": 47.343, "max": 47.343, "mean": 47.343}
    assert "cv0" not in summ["temps_c"]
    assert summ["clocks_hz"]["gpu"] == {"min": 306000000, "max": 306000000}
    assert summ["rails_w"]["VIN_SYS_5V0"]["max"] == pytest.approx(5.008 * 0.724, abs=1e-4)
    assert tel["samples"] >= 10
    assert "telemetry.jsonl" in rec.files
    series = [
        json.loads(x) for x in (a.state_dir / "runs" / run_id / "telemetry.jsonl").read_text().splitlines()
    ]
    assert len(series) == tel["samples"]
    m = metrics(url)
    assert m[("edgebench_inferences_total", ())] >= result["iterations"] > 0
    assert m[("edgebench_runs_in_flight", ())] == 0
