# ruff: noqa: E501  (real log lines are long)
"""Placement on real runtimes (ORT CPU, LiteRT + XNNPACK), the gates, and the
delegate / ORT log parsers."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import put_artifact

from agent.load.task import run_task
from agent.placement import gates
from agent.placement.litert import covered_nodes
from agent.placement.logs import (
    capture_stderr,
    parse_delegate_logs,
    parse_ort_ep_errors,
    parse_ort_placements,
    parse_tflite_delegate,
    parse_tidl,
    parse_vx,
)
from agent.spec import RunSpec
from controller.models import onnx_graphs, tflite_builder


@pytest.fixture
def state(tmp_path):
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    return tmp_path


def placement_of(state: Path, model: Path, **kw) -> dict:
    spec = RunSpec.from_dict(
        {"kind": "placement", "model_sha256": put_artifact(state, model), "model_name": model.name, **kw}
    )
    msgs: list[dict] = []
    part = run_task(spec, state / "runs/r1", msgs.append)
    assert part is not None, msgs
    return part["placement"]


def test_xnnpack_add_cumsum_add_two_partitions_cumsum_on_cpu(state, tmp_path):
    p = placement_of(state, tflite_builder.add_cumsum_add(tmp_path / "acs.tflite"))
    assert p["runtime"] == "litert" and p["delegate"] == "XNNPACK"
    assert p["total_nodes"] == 3
    assert p["partitions"] == 2
    assert p["nodes_by_device"] == {"XNNPACK": 2, "CPU": 1}
    assert p["accelerated_nodes"] == 2
    assert p["fallback"] is True
    assert [(n["op_type"], n["device"]) for n in p["fallback_nodes"]] == [("CUMSUM", "CPU")]
    assert [n["device"] for n in p["nodes"]] == ["XNNPACK", "CPU", "XNNPACK"]


def test_xnnpack_fully_delegated_cnn_is_no_fallback(state, tmp_path):
    p = placement_of(state, tflite_builder.float_cnn(tmp_path / "cnn.tflite"))
    assert p["partitions"] == 1 and p["fallback"] is False and p["fallback_nodes"] == []
    assert p["accelerated_nodes"] == p["total_nodes"] == 5


def test_delegate_cover_walks_back_to_the_boundary():
    ops = [
        {"index": 0, "op_name": "ADD", "inputs": [0, 1], "outputs": [2]},
        {"index": 1, "op_name": "MUL", "inputs": [2, 1], "outputs": [3]},
        {"index": 2, "op_name": "CUMSUM", "inputs": [3, 4], "outputs": [5]},
        {"index": 3, "op_name": "ADD", "inputs": [5, 6], "outputs": [7]},
        {"index": 4, "op_name": "DELEGATE", "inputs": [0, 1], "outputs": [3]},
        {"index": 5, "op_name": "DELEGATE", "inputs": [5, 6], "outputs": [7]},
    ]
    assert covered_nodes(ops) == {4: [0, 1], 5: [3]}


def test_ort_cpu_only_run_has_no_fallback(state, tmp_path):
    p = placement_of(state, onnx_graphs.middle_unsupported(tmp_path / "mid.onnx"))
    assert p["runtime"] == "onnxruntime" and p["fallback"] is False
    assert p["nodes_by_device"] == {"CPU": 7} and p["accelerated_nodes"] == 0 and p["partitions"] == 0
    assert p["cpu_time_share"] == pytest.approx(1.0)
    assert sum(n["time_share"] for n in p["nodes"]) == pytest.approx(1.0)
    # ORT's own verbose log agrees with the profile
    assert p["log_cross_check"] == {
        "available": True,
        "log_nodes": {"CPUExecutionProvider": 7},
        "agrees": True,
    }


def test_ort_unavailable_provider_with_cpu_allowed_is_reported_as_fallback(state, tmp_path):
    p = placement_of(
        state,
        onnx_graphs.middle_unsupported(tmp_path / "mid.onnx"),
        providers=["TensorrtExecutionProvider", "CPUExecutionProvider"],
    )
    assert p["fallback"] is True
    assert p["dropped_providers"] == ["TensorrtExecutionProvider"]
    assert any("TensorrtExecutionProvider not available" in r for r in p["fallback_reasons"])
    assert len(p["fallback_nodes"]) == 7 and p["accelerated_nodes"] == 0


# -- gates -------------------------------------------------------------------


def _spec(**kw) -> RunSpec:
    return RunSpec.from_dict({"kind": "bench", "model_sha256": "b" * 64, **kw})


PLACED = {
    "placement": {
        "fallback": True,
        "partitions": 2,
        "cpu_time_share": 0.4,
        "fallback_nodes": [{"name": "mid", "op_type": "Hardmax", "device": "CPU", "time_share": 0.4}],
        "fallback_reasons": ["1 node(s) ran on CPU"],
    }
}


def test_gates_fail_on_fallback_names_ops_and_share():
    (g,) = gates.evaluate(PLACED, _spec(fail_on_fallback=True))
    assert g == {
        "name": "fallback",
        "passed": False,
        "message": "CPU fallback: mid (Hardmax); 40.0% of inference time on CPU",
    }


def test_gates_max_cpu_ops_and_partitions():
    got = gates.evaluate(PLACED, _spec(max_cpu_ops=1, max_partitions=1))
    assert [(g["name"], g["passed"]) for g in got] == [("max_cpu_ops", True), ("max_partitions", False)]
    assert got[1]["message"] == "graph cut into 2 accelerator partition(s) (limit 1)"
    assert gates.evaluate(PLACED, _spec(max_cpu_ops=0))[0]["passed"] is False


def test_gates_pass_and_absent():
    ok = {"placement": {"fallback": False, "partitions": 1, "fallback_nodes": []}}
    assert gates.evaluate(ok, _spec(fail_on_fallback=True))[0]["passed"] is True
    assert gates.evaluate(ok, _spec()) == []
    assert gates.evaluate({}, _spec(fail_on_fallback=True))[0]["passed"] is False


# -- log parsers -------------------------------------------------------------

VX_LOG = """\
Vx delegate: allowed_cache_mode set to 0.
Vx delegate: device num set to 0.
Vx delegate: allowed_builtin_code set to 0.
Vx delegate: error_during_init set to 0.
Vx delegate: error_during_prepare set to 0.
Vx delegate: error_during_invoke set to 0.
EXTERNAL delegate created.
WARNING: Fallback unsupported op 32 to TfLite
WARNING: Fallback unsupported op 41 to TfLite
INFO: Replacing 61 out of 63 node(s) with delegate (Vx Delegate) node, yielding 3 partitions for the whole graph.
"""

TIDL_LOG = """\
 tidl_tfLite_delegate_create ...
Number of subgraphs:2 , 56 nodes delegated out of 60 nodes
APP: Init ... !!!
"""


def test_vx_log_lines():
    vx = parse_vx(VX_LOG)
    # builtin codes 32 and 41 are CUSTOM and SUB
    assert vx["fallback_ops"] == ["CUSTOM", "SUB"]
    assert (vx["delegated_nodes"], vx["total_nodes"], vx["partitions"]) == (61, 63, 3)


def test_vx_log_by_op_name_and_old_replacing_format():
    text = "Fallback unsupported op RESIZE_BILINEAR to TfLite\nReplacing 10 node(s) with delegate (Vx Delegate) node, yielding 2 partitions.\n"
    vx = parse_vx(text)
    assert vx["fallback_ops"] == ["RESIZE_BILINEAR"]
    assert (vx["delegated_nodes"], vx["total_nodes"], vx["partitions"]) == (10, None, 2)


def test_tidl_log_line():
    assert parse_tidl(TIDL_LOG) == {
        "delegate": "tidl",
        "partitions": 2,
        "delegated_nodes": 56,
        "total_nodes": 60,
        "cpu_nodes": 4,
    }
    assert parse_tidl("nothing here") is None
    both = parse_delegate_logs(VX_LOG + TIDL_LOG)
    assert set(both) == {"tflite", "vx", "tidl"}


def test_tflite_replacing_line_per_subgraph():
    got = parse_tflite_delegate(
        "INFO: Replacing 5 out of 7 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 2 partitions for subgraph 0."
    )
    assert got == [
        {"delegate": "TfLiteXNNPackDelegate", "delegated_nodes": 5, "total_nodes": 7, "partitions": 2}
    ]


def test_ort_node_placements_block():
    text = (
        "2026-01-01 [V:onnxruntime:, session_state.cc:1307 VerifyEachNodeIsAssignedToAnEp] Node placements\n"
        "2026-01-01 [V:onnxruntime:, session_state.cc:1313 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on "
        "[OpenVINOExecutionProvider]. Number of nodes: 2\n"
        "2026-01-01 [V:onnxruntime:, session_state.cc:1315 VerifyEachNodeIsAssignedToAnEp]   OpenVINO-EP-subgraph_1 "
        "(OpenVINOExecutionProvider_OpenVINO-EP-subgraph_1_0)\n"
        "2026-01-01 [V:onnxruntime:, session_state.cc:1315 VerifyEachNodeIsAssignedToAnEp]   OpenVINO-EP-subgraph_2 "
        "(OpenVINOExecutionProvider_OpenVINO-EP-subgraph_2_1)\n"
        "2026-01-01 [V:onnxruntime:, session_state.cc:1313 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on "
        "[CPUExecutionProvider]. Number of nodes: 1\n"
        "2026-01-01 [V:onnxruntime:, session_state.cc:1315 VerifyEachNodeIsAssignedToAnEp]   Hardmax (mid)\n"
        "2026-01-01 [V:onnxruntime:, session_state.cc:175 CreateGraphInfo] SaveMLValueNameIndexMapping\n"
    )
    got = parse_ort_placements(text)
    assert got["OpenVINOExecutionProvider"]["count"] == 2
    assert got["CPUExecutionProvider"] == {"count": 1, "nodes": [("Hardmax", "mid")]}


def test_capture_stderr_sees_c_level_writes_and_tees_them_back(capfd):
    import os

    with capture_stderr() as cap:
        os.write(2, b"Number of subgraphs:1 , 11 nodes delegated out of 12 nodes\n")
    assert "11 nodes delegated" in cap.text
    assert "11 nodes delegated" in capfd.readouterr().err


# -- terminal report ---------------------------------------------------------


def test_report_table_and_red_fallback_summary(state, tmp_path):
    from controller.report.placement import RED, render, summary, table

    p = placement_of(state, tflite_builder.add_cumsum_add(tmp_path / "acs.tflite"))
    t = table(p)
    lines = t.splitlines()
    assert lines[0].split() == ["#", "node", "op", "device", "time", "partition"]
    assert [ln.split()[2:4] for ln in lines[2:]] == [
        ["ADD", "XNNPACK"],
        ["CUMSUM", "CPU"],
        ["ADD", "XNNPACK"],
    ]
    plain = summary(p, color=False)
    assert "FALLBACK: 1 op(s) on CPU" in plain and "CUMSUM_1 (CUMSUM)" in plain and "\x1b" not in plain
    assert RED in summary(p, color=True)
    assert "\x1b" not in render(p, color=False)
    ok = dict(p, fallback=False, fallback_nodes=[])
    assert summary(ok).endswith("no CPU fallback")


def ev(name: str, op: str, provider: str, dur: float = 10) -> dict:
    """One ORT profile Node event, as ORT writes it."""
    return {
        "cat": "Node",
        "name": f"{name}_kernel_time",
        "dur": dur,
        "args": {"op_name": op, "provider": provider},
    }


def chain(*nodes: tuple[str, str]) -> list:
    """A linear ONNX graph: each (name, op_type) node feeds the next."""
    from agent.onnx_proto import OnnxNode

    tensors = ["x"] + [f"{name}_out" for name, _ in nodes]
    return [OnnxNode(name, op, [tensors[i]], [tensors[i + 1]]) for i, (name, op) in enumerate(nodes)]


def test_ort_profile_fused_trt_subgraph_expanded_and_memcpy_counted():
    """A TensorRT-style profile (one fused TRTKernel node, Memcpy copies, one CPU node)."""
    from agent.onnx_proto import OnnxNode
    from agent.placement.onnxruntime import build

    graph = [
        OnnxNode("conv1", "Conv", ["x", "w1"], ["a"]),
        OnnxNode("relu1", "Relu", ["a"], ["b"]),
        OnnxNode("nms", "NonMaxSuppression", ["b"], ["c"]),
        OnnxNode("conv2", "Conv", ["c", "w2"], ["d"]),
    ]

    trt = "TensorrtExecutionProvider"
    events = [
        ev("TensorrtExecutionProvider_TRTKernel_graph_main_1_0", "TRTKernel_graph_main_1", trt, 300),
        {"cat": "Node", "name": "nms_fence_before", "dur": 0, "args": {}},
        ev("Memcpy_token_1", "MemcpyToHost", "CPUExecutionProvider", 20),
        ev("nms", "NonMaxSuppression", "CPUExecutionProvider", 500),
        ev("Memcpy_token_2", "MemcpyFromHost", "CPUExecutionProvider", 20),
        ev("TensorrtExecutionProvider_TRTKernel_graph_main_2_1", "TRTKernel_graph_main_2", trt, 200),
    ]
    p = build(
        events,
        graph,
        requested=[trt, "CPUExecutionProvider"],
        session_providers=[trt, "CPUExecutionProvider"],
        dropped=[],
    )
    assert p["partitions"] == 2 and p["memcpy_transitions"] == 2
    assert p["nodes_by_device"] == {"TensorRT": 3, "CPU": 1}
    assert [d["nodes"] for d in p["partitions_detail"]] == [["conv1", "relu1"], ["conv2"]]
    assert [n["name"] for n in p["nodes"]] == ["conv1", "relu1", "nms", "conv2"]
    (fb,) = p["fallback_nodes"]
    assert fb["name"] == "nms" and fb["time_share"] == pytest.approx(0.5)
    assert p["cpu_time_share"] == pytest.approx(0.5) and p["fallback"] is True


def test_ort_profile_per_node_ep_partitions_are_connected_runs():
    """CUDA-style EPs run original nodes one by one: partitions are the
    connected groups of accelerated nodes."""
    from agent.placement.onnxruntime import build

    graph = chain(("conv1", "Conv"), ("relu1", "Relu"), ("topk", "TopK"), ("conv2", "Conv"))
    cuda, cpu = "CUDAExecutionProvider", "CPUExecutionProvider"
    events = [
        ev("conv1", "Conv", cuda),
        ev("relu1", "Relu", cuda),
        ev("topk", "TopK", cpu),
        ev("conv2", "Conv", cuda),
    ]
    p = build(events, graph, requested=[cuda, cpu], session_providers=[cuda, cpu], dropped=[])
    assert p["partitions"] == 2 and p["nodes_by_device"] == {"CUDA": 3, "CPU": 1}
    assert [n["name"] for n in p["fallback_nodes"]] == ["topk"] and p["cpu_time_share"] == pytest.approx(0.25)


def test_ort_profile_node_names_that_prefix_each_other_stay_separate_nodes():
    """``n1`` is a prefix of ``n10`` (executed on CPU): n1 is still a member of
    the first fused subgraph. A CPU node ORT fused and renamed
    (``fused n13/MatMulAddFusion``) accounts for its original n13."""
    from agent.placement.onnxruntime import build

    graph = chain(
        ("n1", "Mul"), ("n2", "Relu"), ("n10", "Hardmax"), ("n11", "Mul"), ("n12", "Relu"), ("n13", "MatMul")
    )
    ov, cpu = "OpenVINOExecutionProvider", "CPUExecutionProvider"
    events = [
        ev(f"{ov}_OpenVINO-EP-subgraph_1_0", "OpenVINO-EP-subgraph_1", ov),
        ev("n10", "Hardmax", cpu),
        ev(f"{ov}_OpenVINO-EP-subgraph_2_1", "OpenVINO-EP-subgraph_2", ov),
        ev("fused n13/MatMulAddFusion", "FusedGemm", cpu),
    ]
    p = build(events, graph, requested=[ov, cpu], session_providers=[ov, cpu], dropped=[])
    assert [d["nodes"] for d in p["partitions_detail"]] == [["n1", "n2"], ["n11", "n12"]]
    assert [n["name"] for n in p["nodes"]] == ["n1", "n2", "n10", "n11", "n12", "fused n13/MatMulAddFusion"]
    assert p["total_nodes"] == 6 and p["nodes_by_device"] == {"OpenVINO": 4, "CPU": 2}


ORT_EP_FAILED_LOG = (
    "\x1b[1;31m2026-11-28 05:15:10.794625862 [E:onnxruntime:Default, provider_bridge_ort.cc:2310 Create] "
    "/onnxruntime/onnxruntime/core/providers/openvino/openvino_provider_factory.cc:141 std::string "
    "onnxruntime::openvino_ep::ParseDeviceType(std::shared_ptr<OVCore>, const onnxruntime::ProviderOptions&) "
    "[ERROR] [OpenVINO] Device NPU is not available\n\x1b[m\n"
    "\x1b[0;93m2026-11-28 05:15:10.794638711 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:1066 "
    "CreateExecutionProviderFactoryInstance] Failed to create OpenVINOExecutionProvider. Please refer "
    "https://onnxruntime.ai/docs/execution-providers/OpenVINO-ExecutionProvider.html#requirements to ensure "
    "all dependencies are met.\x1b[m\n"
)


def test_ort_log_says_why_an_ep_was_dropped_and_the_reason_names_it():
    from agent.onnx_proto import OnnxNode
    from agent.placement.onnxruntime import build

    ov, cpu = "OpenVINOExecutionProvider", "CPUExecutionProvider"
    assert parse_ort_ep_errors(ORT_EP_FAILED_LOG) == {ov: "[OpenVINO] Device NPU is not available"}
    assert parse_ort_ep_errors("Failed to create OpenVINOExecutionProvider. Please refer") == {ov: ""}
    events = [{"cat": "Node", "name": "a_kernel_time", "dur": 5, "args": {"op_name": "Add", "provider": cpu}}]
    dropped = [{"provider": ov, "reason": "dropped by onnxruntime at session creation"}]
    p = build(events, [OnnxNode("a", "Add", ["x"], ["y"])], [ov, cpu], [cpu], dropped, ORT_EP_FAILED_LOG)
    assert p["fallback"] is True and p["dropped_providers"] == [ov]
    assert p["fallback_reasons"][0] == (
        f"requested provider {ov} dropped by onnxruntime at session creation: [OpenVINO] Device NPU is not available"
    )
