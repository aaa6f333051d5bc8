"""Real partitioning with ONNX Runtime's OpenVINO execution provider. It
replaces onnxruntime, so these run the task under .venv-openvino in a
subprocess; the models are built here with our own code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import put_artifact

from agent.placement import gates
from agent.spec import RunSpec
from controller.models import onnx_graphs

ROOT = Path(__file__).resolve().parent.parent
OV_PYTHON = ROOT / ".venv-openvino" / "bin" / "python"

pytestmark = [
    pytest.mark.openvino,
    pytest.mark.skipif(not OV_PYTHON.exists(), reason=".venv-openvino (onnxruntime-openvino) is missing"),
]

OV = "OpenVINOExecutionProvider"
CPU = "CPUExecutionProvider"

_DRIVER = """
import json, sys
from pathlib import Path
from agent.bench.task import run_task
from agent.spec import RunSpec
spec = RunSpec.from_dict(json.loads(sys.argv[1]))
msgs = []
run_task(spec, Path(sys.argv[2]), msgs.append)
print(json.dumps([m for m in msgs if m["type"] in ("result", "error")]))
"""


def ov_run(tmp_path: Path, model: Path, **kw) -> dict:
    sha = put_artifact(tmp_path, model)
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {"kind": "placement", "model_sha256": sha, "model_name": model.name, **kw}
    res = subprocess.run(
        [str(OV_PYTHON), "-c", _DRIVER, json.dumps(spec), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (msg,) = json.loads(res.stdout.strip().splitlines()[-1])
    return msg


def test_middle_unsupported_op_gives_two_partitions_and_one_named_cpu_node(tmp_path):
    msg = ov_run(tmp_path, onnx_graphs.middle_unsupported(tmp_path / "mid.onnx"), providers=[OV, CPU])
    assert msg["type"] == "result", msg
    p = msg["data"]["placement"]
    assert msg["data"]["runtime"]["version"].startswith("1.")
    assert p["partitions"] == 2
    assert p["total_nodes"] == 7
    assert p["nodes_by_device"] == {"OpenVINO": 6, "CPU": 1}
    assert p["accelerated_nodes"] == 6
    assert p["fallback"] is True
    (fb,) = p["fallback_nodes"]
    assert (fb["name"], fb["op_type"], fb["device"]) == ("mid", onnx_graphs.UNSUPPORTED_OP, "CPU")
    assert 0 < fb["time_share"] < 1 and p["cpu_time_share"] == pytest.approx(fb["time_share"])
    # the fused subgraphs were expanded into their member nodes
    members = [d["nodes"] for d in p["partitions_detail"]]
    assert members == [["pre_mul", "pre_add", "pre_relu"], ["post_mul", "post_add", "post_relu"]]
    assert p["log_cross_check"]["agrees"] is True
    # and the gate turns it into a failure naming the op
    spec = RunSpec.from_dict({"kind": "bench", "model_sha256": "c" * 64, "fail_on_fallback": True})
    (g,) = gates.evaluate(msg["data"], spec)
    assert g["passed"] is False and "mid (Hardmax)" in g["message"]


def test_fully_supported_graph_is_one_partition_without_fallback(tmp_path):
    msg = ov_run(tmp_path, onnx_graphs.fully_supported(tmp_path / "full.onnx"), providers=[OV, CPU])
    p = msg["data"]["placement"]
    assert p["fallback"] is False and p["partitions"] == 1
    assert p["nodes_by_device"] == {"OpenVINO": 7} and p["fallback_nodes"] == []
    assert p["cpu_time_share"] == 0
    spec = RunSpec.from_dict({"kind": "bench", "model_sha256": "c" * 64, "fail_on_fallback": True})
    assert gates.evaluate(msg["data"], spec)[0]["passed"] is True


def test_strict_placement_fails_the_load_with_orts_message(tmp_path):
    msg = ov_run(
        tmp_path, onnx_graphs.middle_unsupported(tmp_path / "mid.onnx"), providers=[OV], strict_placement=True
    )
    assert msg["type"] == "error" and msg["code"] == "run_failed"
    assert msg["message"].startswith("strict placement: onnxruntime could not place every node:")
    assert "fallback to CPU EP has been explicitly disabled" in msg["message"]


def test_unavailable_requested_provider_is_a_fallback_not_silent_cpu(tmp_path):
    msg = ov_run(
        tmp_path,
        onnx_graphs.fully_supported(tmp_path / "full.onnx"),
        providers=["CUDAExecutionProvider", CPU],
    )
    p = msg["data"]["placement"]
    assert p["fallback"] is True and p["dropped_providers"] == ["CUDAExecutionProvider"]
    assert p["nodes_by_device"] == {"CPU": 7} and len(p["fallback_nodes"]) == 7


def test_provider_aliases_and_options_reach_the_ep(tmp_path):
    msg = ov_run(
        tmp_path,
        onnx_graphs.fully_supported(tmp_path / "full.onnx"),
        providers=["openvino", "cpu"],
        provider_options={"openvino": {"device_type": "CPU", "num_of_threads": "1"}},
    )
    assert msg["type"] == "result", msg
    assert msg["data"]["runtime"]["providers"] == [OV, CPU]
    assert msg["data"]["placement"]["nodes_by_device"] == {"OpenVINO": 7}
