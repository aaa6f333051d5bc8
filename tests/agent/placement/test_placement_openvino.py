"""Real partitioning with ONNX Runtime's OpenVINO execution provider, through
the CLI: ``edgebench placement`` / ``bench`` / ``compare`` from this venv
against one ``edgebench-agent serve`` from .venv-openvino (onnxruntime-openvino
replaces onnxruntime) for the whole module. The models are built here with our
own code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import OV_AGENT

from controller.cli import main
from controller.models import onnx_graphs

pytestmark = [
    pytest.mark.openvino,
    pytest.mark.skipif(not OV_AGENT.exists(), reason=".venv-openvino (onnxruntime-openvino) is missing"),
]

OV = "OpenVINOExecutionProvider"
CPU = "CPUExecutionProvider"
FAST_BENCH = ["--warmup", "0", "--duration", "0.2", "--min-iterations", "3"]


def prefix_named_chain(path: Path, n: int = 8) -> Path:
    """MatMul n1 -> Add n2 -> Relu n3 -> Hardmax n10 -> Mul n11 -> Add n12 -> Relu n13:
    ``n1`` is a prefix of ``n10``..``n13``. OpenVINO takes n1..n3 and n11..n13;
    on the CPU EP alone ORT fuses n1..n3 into one Gemm."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h = helper
    nodes = [
        h.make_node("MatMul", ["x", "w"], ["a"], name="n1"),
        h.make_node("Add", ["a", "bias"], ["b"], name="n2"),
        h.make_node("Relu", ["b"], ["c"], name="n3"),
        h.make_node(onnx_graphs.UNSUPPORTED_OP, ["c"], ["d"], name="n10", axis=-1),
        h.make_node("Mul", ["d", "scale"], ["e"], name="n11"),
        h.make_node("Add", ["e", "bias"], ["f"], name="n12"),
        h.make_node("Relu", ["f"], ["y"], name="n13"),
    ]
    inits = [
        numpy_helper.from_array(np.eye(n, dtype=np.float32), "w"),
        numpy_helper.from_array(np.full((1, n), 2.0, np.float32), "scale"),
        numpy_helper.from_array(np.ones((1, n), np.float32), "bias"),
    ]
    io = [h.make_tensor_value_info(v, TensorProto.FLOAT, [1, n]) for v in ("x", "y")]
    model = h.make_model(
        h.make_graph(nodes, "edgebench_prefix_names", io[:1], io[1:], inits),
        opset_imports=[h.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def cli(ov_agent, run_cli):
    """``cli(command, model, *options) -> (exit code, stdout, result JSON)``."""

    def run(command: str, model: Path, *opts: str) -> tuple[int, str, dict]:
        fast = FAST_BENCH if command == "bench" else []
        r = run_cli(command, model, *fast, *opts, agent=ov_agent.address)
        assert r.result is not None, r.err
        return r.rc, r.out, r.result

    run.db = run_cli.db
    return run


def _shown_share(p: dict) -> str:
    return f"{p['cpu_time_share'] * 100:.1f}% of inference time"


def test_placement_names_the_unsupported_op_and_the_fallback_gate_exits_3(cli, tmp_path):
    model = onnx_graphs.middle_unsupported(tmp_path / "mid.onnx")
    rc, out, doc = cli("placement", model, "--provider", OV, "--provider", CPU, "--fail-on-fallback")
    assert rc == 3, out
    p = doc["placement"]
    assert doc["status"] == "completed" and doc["runtime"]["version"].startswith("1.")
    assert p["partitions"] == 2 and p["total_nodes"] == 7 and p["accelerated_nodes"] == 6
    assert p["nodes_by_device"] == {"OpenVINO": 6, "CPU": 1} and p["fallback"] is True
    (fb,) = p["fallback_nodes"]
    assert (fb["name"], fb["op_type"], fb["device"]) == ("mid", onnx_graphs.UNSUPPORTED_OP, "CPU")
    assert 0 < fb["time_share"] < 1 and p["cpu_time_share"] == pytest.approx(fb["time_share"])
    # the fused subgraphs were expanded into their member nodes
    members = [d["nodes"] for d in p["partitions_detail"]]
    assert members == [["pre_mul", "pre_add", "pre_relu"], ["post_mul", "post_add", "post_relu"]]
    assert p["log_cross_check"]["agrees"] is True
    # the terminal: the table row, the red block and the failed gate name the op and the CPU share
    assert re.search(r"^3\s+mid\s+Hardmax\s+CPU\s", out, re.M)
    assert "7 nodes (CPU 1, OpenVINO 6); 2 accelerator partition(s)" in out
    assert f"FALLBACK: 1 op(s) on CPU, {_shown_share(p)}" in out
    assert f"gate fallback: FAIL - CPU fallback: mid (Hardmax); {_shown_share(p)} on CPU" in out


def test_bench_keeps_nodes_whose_names_prefix_each_other(cli, tmp_path):
    model = prefix_named_chain(tmp_path / "prefix.onnx")
    rc, out, doc = cli("bench", model, "--provider", "openvino", "--provider", "cpu", "--fail-on-fallback")
    assert rc == 3, out
    p = doc["placement"]
    assert doc["iterations"] >= 3
    assert [n["name"] for n in p["nodes"]] == ["n1", "n2", "n3", "n10", "n11", "n12", "n13"]
    assert p["total_nodes"] == 7 and p["nodes_by_device"] == {"OpenVINO": 6, "CPU": 1}
    assert [d["nodes"] for d in p["partitions_detail"]] == [["n1", "n2", "n3"], ["n11", "n12", "n13"]]
    assert p["partitions"] == 2 and [n["name"] for n in p["fallback_nodes"]] == ["n10"]
    assert f"FALLBACK: 1 op(s) on CPU, {_shown_share(p)}" in out and "ops: n10 (Hardmax)" in out


def test_bench_of_a_fully_supported_model_passes_the_gate(cli, tmp_path):
    # provider aliases and options reach the EP
    model = onnx_graphs.fully_supported(tmp_path / "full.onnx")
    rc, out, doc = cli("bench", model, "--provider", "openvino", "--provider", "cpu", "--provider-opt",
                       "openvino:device_type=CPU", "--provider-opt", "openvino:num_of_threads=1",
                       "--fail-on-fallback")  # fmt: skip
    assert rc == 0, out
    p = doc["placement"]
    assert doc["runtime"]["providers"] == [OV, CPU]
    assert p["fallback"] is False and p["partitions"] == 1 and p["fallback_nodes"] == []
    assert p["nodes_by_device"] == {"OpenVINO": 7} and p["cpu_time_share"] == 0
    assert "no CPU fallback" in out and "gate fallback: PASS" in out


def test_strict_placement_fails_the_run_with_orts_message_on_one_line(cli, tmp_path):
    model = onnx_graphs.middle_unsupported(tmp_path / "mid.onnx")
    rc, out, doc = cli("placement", model, "--provider", OV, "--strict-placement")
    assert rc == 1, out  # run failed (the graph was valid; the placement asked for is impossible)
    assert doc["status"] == "failed" and doc["error_code"] == "run_failed"
    (line,) = [ln for ln in out.splitlines() if "strict placement" in ln]
    assert line.startswith("run failed: strict placement: onnxruntime could not place every node:")
    assert "fallback to CPU EP has been explicitly disabled" in line


def test_provider_ort_drops_at_session_creation_is_a_fallback(cli, tmp_path):
    """ORT does not fail when an EP cannot be created (here: OpenVINO asked for
    an NPU this machine lacks); it logs an error and runs on CPU alone."""
    model = onnx_graphs.fully_supported(tmp_path / "full.onnx")
    rc, out, doc = cli("placement", model, "--provider", "openvino", "--provider", "cpu",
                       "--provider-opt", "openvino:device_type=NPU", "--fail-on-fallback")  # fmt: skip
    p = doc["placement"]
    if OV in p["session_providers"]:
        pytest.skip("this machine has an OpenVINO NPU")
    assert rc == 3, out
    assert p["session_providers"] == [CPU] and p["dropped_providers"] == [OV]
    assert p["fallback"] is True and p["nodes_by_device"] == {"CPU": 7} and p["partitions"] == 0
    why = f"requested provider {OV} dropped by onnxruntime at session creation: "
    why += "[OpenVINO] Device NPU is not available"
    assert p["fallback_reasons"][0] == why
    assert f"why: {why}" in out


def test_compare_shows_the_placement_change_from_cpu_to_openvino(cli, tmp_path, capsys):
    model = prefix_named_chain(tmp_path / "prefix.onnx")
    rc_a, _, a = cli("placement", model, "--provider", CPU)
    rc_b, _, b = cli("placement", model, "--provider", OV, "--provider", CPU)
    assert (rc_a, rc_b) == (0, 0)
    out = tmp_path / "compare.json"
    assert main(["compare", a["run_id"], b["run_id"], "--db", cli.db, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    c = json.loads(out.read_text())
    assert c["placement_changes"] == ["total_nodes", "accelerated_nodes", "partitions", "fallback"]
    assert {k: (v["a"], v["b"]) for k, v in c["placement"].items() if k != "cpu_time_share"} == {
        "total_nodes": (5, 7),
        "accelerated_nodes": (0, 6),
        "partitions": (0, 2),
        "fallback": (False, True),
    }
    share = c["placement"]["cpu_time_share"]
    assert share["a"] == pytest.approx(1.0) and share["b"] < 1.0
    assert c["moved"] == [{"name": n, "from": "CPU", "to": "OpenVINO"} for n in ("n11", "n12", "n13")]
    # alone on the CPU EP, ORT fused n1..n3 into one FusedGemm; OpenVINO kept them
    assert [n["name"] for n in c["removed_nodes"]] == ["fused n1/MatMulAddFusion"]
    assert [(n["name"], n["device"]) for n in c["added_nodes"]] == [
        (x, "OpenVINO") for x in ("n1", "n2", "n3")
    ]
    assert re.search(r"^  partitions\s+0\s+2  changed$", text, re.M)
    assert re.search(r"^  fallback\s+no\s+yes  changed$", text, re.M)
    assert re.search(r"^  CPU time\s+100\.0%\s+\d+\.\d%$", text, re.M)
    assert "  n11: CPU -> OpenVINO" in text
    assert "nodes only in A: fused n1/MatMulAddFusion (FusedGemm, CPU)" in text
    assert "nodes only in B: n1 (MatMul, OpenVINO), n2 (Add, OpenVINO), n3 (Relu, OpenVINO)" in text
    assert "placement unchanged" not in text
