"""The agent as a JetPack 6 board runs it: Python 3.10 with a vendor-style
``tflite_runtime`` (no ai_edge_litert) and onnxruntime, from ``.venv-py310``
(``make board310``), on the Orin Nano fixture tree. The controller drives it
from the 3.11 venv over real gRPC, as a host drives a board."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, spawn_agent

from controller.cli import main
from controller.models import tflite_builder

BOARD_AGENT = ROOT / ".venv-py310" / "bin" / "edgebench-agent"
FAST = ["--warmup", "0.1", "--duration", "0.3", "--min-iterations", "5", "--quiet"]

pytestmark = pytest.mark.skipif(not BOARD_AGENT.exists(), reason=".venv-py310 (make board310) is missing")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    d = tmp_path_factory.mktemp("board")
    ap = spawn_agent(
        d / "state", "--sysfs-root", str(ROOT / "tests/fixtures/orin-nano"), agent_bin=BOARD_AGENT
    )
    yield ap
    ap.stop()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    return tmp_path


def _bench(board, model, out, *extra) -> tuple[int, dict]:
    rc = main(["bench", "--agent", board.address, str(model), *FAST, "--json", str(out), *extra])
    return rc, json.loads(out.read_text()) if out.exists() else {}


def test_info_is_a_python_310_board_with_the_vendor_tflite_runtime(board, env, capsys):
    assert main(["info", "--agent", board.address, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["python"].startswith("3.10.")
    assert info["profile"] == "orin-nano"
    lite = info["runtimes"]["litert"]
    assert (lite["module"], lite["distribution"]) == ("tflite_runtime", "tflite-runtime")
    assert "CPUExecutionProvider" in info["runtimes"]["onnxruntime"]["providers"]


def test_tflite_bench_and_placement_run_on_tflite_runtime(board, env):
    rc, doc = _bench(board, tflite_builder.float_cnn(env / "cnn.tflite"), env / "a.json")
    assert rc == 0, doc.get("error")
    assert doc["runtime"]["distribution"] == "tflite-runtime"
    assert doc["iterations"] >= 5 and doc["latency_ms"]["p50"] > 0
    assert doc["telemetry"]["summary"]["temps_c"]  # the fixture board's zones, sampled on 3.10
    # XNNPACK inside tflite_runtime leaves CUMSUM to the builtin kernels: a fallback
    rc, doc = _bench(
        board, tflite_builder.add_cumsum_add(env / "acs.tflite"), env / "b.json", "--fail-on-fallback"
    )
    assert rc == 3
    p = doc["placement"]
    assert p["partitions"] == 2 and [n["op_type"] for n in p["fallback_nodes"]] == ["CUMSUM"]


def test_int8_model_gets_int8_inputs_on_tflite_runtime(board, env):
    rc, doc = _bench(board, tflite_builder.int8_conv(env / "q.tflite"), env / "q.json")
    assert rc == 0, doc.get("error")
    assert doc["iterations"] >= 5


def test_onnx_bench_on_the_310_agent(board, env, tiny_onnx_model):
    rc, doc = _bench(board, tiny_onnx_model, env / "o.json")
    assert rc == 0, doc.get("error")
    assert doc["agent"]["python"].startswith("3.10.")
    assert doc["runtime"]["name"] == "onnxruntime" and doc["placement"]["fallback"] is False
