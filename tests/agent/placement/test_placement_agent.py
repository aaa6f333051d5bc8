"""Placement end to end through a real agent on loopback (gRPC, spawned
worker, executor result assembly): the XNNPACK ADD->CUMSUM->ADD graph with
--fail-on-fallback gives a completed run with a failed gate naming CUMSUM."""

from __future__ import annotations

import json

from agent.rpc.edgebench.v1 import agent_pb2 as pb
from controller.models import tflite_builder


def _run(agent, push, path, **kw) -> dict:
    sha = push(agent.stub, path)
    spec = {"kind": "bench", "model_sha256": sha, "model_name": path.name, "warmup_s": 0.1, "duration_s": 0.3,
            "min_iterations": 5, "telemetry": False, **kw}  # fmt: skip
    run_id = agent.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id
    for _ in agent.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120):
        pass
    rec = agent.stub.GetRun(pb.GetRunRequest(run_id=run_id))
    return json.loads(rec.result_json)


def test_xnnpack_fallback_gate_fails_through_the_agent(agent, push, tmp_path):
    doc = _run(agent, push, tflite_builder.add_cumsum_add(tmp_path / "acs.tflite"), fail_on_fallback=True)
    assert doc["status"] == "completed", doc.get("error")
    p = doc["placement"]
    assert p["partitions"] == 2 and p["fallback"] is True
    assert [n["op_type"] for n in p["fallback_nodes"]] == ["CUMSUM"]
    (gate,) = [g for g in doc["gates"] if g["name"] == "fallback"]
    assert gate["passed"] is False and "CUMSUM" in gate["message"]
    assert doc["iterations"] >= 5 and doc["model"]["format"] == "tflite"


def test_placement_kind_max_partitions_gate_counts_the_delegate_partitions(agent, push, tmp_path):
    doc = _run(agent, push, tflite_builder.add_cumsum_add(tmp_path / "acs.tflite"), kind="placement",
               max_partitions=1, max_cpu_ops=1)  # fmt: skip
    assert doc["status"] == "completed", doc.get("error")
    assert doc["kind"] == "placement" and doc["placement"]["partitions"] == 2
    gates = {g["name"]: g for g in doc["gates"]}
    assert gates["max_partitions"]["passed"] is False
    assert gates["max_partitions"]["message"] == "graph cut into 2 accelerator partition(s) (limit 1)"
    assert gates["max_cpu_ops"]["passed"] is True  # CUMSUM alone: 1 op, at the limit
