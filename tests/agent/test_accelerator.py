"""``--accelerator NAME``: the board's hardware profile supplies the runtime,
provider or delegate, their options and environment, so a run on an i.MX8M
Plus, AM62A or Jetson checks the accelerator that board really has.

Profiles are the shipped ones; boards are the fixture trees; the partitioning
EP is the real OpenVINO EP behind an agent running in .venv-openvino."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import grpc
import pytest
from conftest import ROOT, spawn_agent

from agent import profiles
from agent.errors import BadInput
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.spec import RunSpec
from controller.cli import main
from controller.models import onnx_graphs, tflite_builder

FIXTURES = ROOT / "tests" / "fixtures"
REPO_PROFILES = ROOT / "hw-profiles"
OV_AGENT = ROOT / ".venv-openvino" / "bin" / "edgebench-agent"
SHA = "0" * 64


def _prof(name: str) -> profiles.Profile:
    return profiles.load(name, [REPO_PROFILES])


# --- which profile entry a name reaches ---------------------------------------


def test_am62a_npu_is_tidl_ep_for_onnx_and_tidl_delegate_for_tflite():
    am = _prof("am62a")
    onnx = am.accelerator("npu", "onnxruntime")
    assert onnx["entry"] == "dsp" and onnx["providers"][0] == "TIDLExecutionProvider"
    assert onnx["provider_options"]["TIDLExecutionProvider"]["artifacts_folder"]
    tfl = am.accelerator("npu", "litert")
    assert tfl["entry"] == "tflite" and tfl["delegate"] == "/usr/lib/libtidl_tfl_delegate.so"
    assert tfl["providers"] == []


def test_jetson_npu_is_the_dla_where_the_module_has_one():
    for board in ("agx-orin", "orin-nx", "xavier-nx"):
        acc = _prof(board).accelerator("npu", "onnxruntime")
        assert acc["entry"] == "dla", board
        assert acc["providers"][0] == "TensorrtExecutionProvider"
        assert acc["provider_options"]["TensorrtExecutionProvider"]["trt_dla_enable"] == "1"
    # Orin Nano has no DLA: say what it has instead of running on the GPU
    with pytest.raises(BadInput, match=r"profile orin-nano has no accelerator 'npu'; available: gpu"):
        _prof("orin-nano").accelerator("npu", "onnxruntime")


def test_imx8mp_npu_is_the_vx_delegate_with_its_env():
    acc = _prof("imx8mp").accelerator("npu", "litert")
    assert acc["delegate"] == "/usr/lib/libvx_delegate.so"
    assert acc["env"]["USE_GPU_INFERENCE"] == "0"
    assert _prof("imx8mp").accelerator("gpu", "litert")["env"]["USE_GPU_INFERENCE"] == "1"


def test_model_for_the_wrong_runtime_names_the_one_the_accelerator_needs():
    with pytest.raises(
        BadInput, match=r"accelerator 'npu' of profile imx8mp is reached through litert, not onnx"
    ):
        _prof("imx8mp").accelerator("npu", "onnxruntime")


def test_serves_names_are_listed_as_available():
    with pytest.raises(BadInput, match=r"available: dla, gpu, npu"):
        _prof("xavier-nx").accelerator("dsp")


# --- the spec it makes -------------------------------------------------------


def _spec(**kw) -> RunSpec:
    return RunSpec(kind="bench", model_sha256=SHA, accelerator="npu", **kw)


def test_user_options_override_the_profile_defaults():
    acc = _prof("am62a").accelerator("npu", "onnxruntime")
    spec = _spec(provider_options={"TIDLExecutionProvider": {"artifacts_folder": "/data/art"}})
    out = spec.with_accelerator(acc)
    assert out.providers == ["TIDLExecutionProvider", "CPUExecutionProvider"]
    assert out.provider_options["TIDLExecutionProvider"] == {
        "artifacts_folder": "/data/art",
        "debug_level": "0",
    }
    assert out.runtime == "onnxruntime" and out.env == {}
    vx = _spec(delegate_options={"cache_file_path": "/x"}).with_accelerator(
        _prof("imx8mp").accelerator("npu", "litert")
    )
    assert vx.delegate == "/usr/lib/libvx_delegate.so" and vx.delegate_options == {"cache_file_path": "/x"}
    assert vx.env["VIV_VX_ENABLE_CACHE_GRAPH_BINARY"] == "1"


def test_short_provider_names_in_options_merge_into_the_profile_options():
    acc = _prof("agx-orin").accelerator("gpu", "onnxruntime")
    out = _spec(provider_options={"tensorrt": {"trt_fp16_enable": "0"}}).with_accelerator(acc)
    assert list(out.provider_options) == ["TensorrtExecutionProvider"]
    assert out.provider_options["TensorrtExecutionProvider"] == {
        "trt_fp16_enable": "0",  # the user's
        "trt_engine_cache_enable": "1",  # the profile's, kept
        "trt_engine_cache_path": "/var/cache/edgebench/trt",
    }


def test_accelerator_with_explicit_provider_or_runtime_is_ambiguous():
    acc = _prof("agx-orin").accelerator("gpu", "onnxruntime")
    with pytest.raises(BadInput, match=r"give either --accelerator or --provider/--delegate"):
        _spec(providers=["CUDAExecutionProvider"]).with_accelerator(acc)
    # --runtime picks the profile entry; a board without one for it says so
    with pytest.raises(BadInput, match=r"reached through onnxruntime, not litert"):
        _prof("agx-orin").accelerator("gpu", "litert")


# --- through a real agent ----------------------------------------------------


def env_task(spec: RunSpec, run_dir: Path, send) -> None:
    """A worker task that reports the environment it was started with."""
    send({"type": "result", "data": {"env_seen": {k: os.environ.get(k) for k in spec.env}}})


def _start(agent, spec: dict) -> str:
    return agent.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id


def _result(agent, run_id: str) -> dict:
    for _ in agent.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120):
        pass
    return json.loads(agent.stub.GetRun(pb.GetRunRequest(run_id=run_id)).result_json)


def test_profile_env_reaches_the_worker_process(agent_factory, push, tmp_path):
    agent = agent_factory(sysfs_root=FIXTURES / "imx8mp", task=f"{__name__}:env_task")
    sha = push(agent.stub, tflite_builder.add_cumsum_add(tmp_path / "m.tflite"))
    doc = _result(agent, _start(agent, {"kind": "bench", "model_sha256": sha, "accelerator": "npu",
                                        "telemetry": False}))  # fmt: skip
    assert doc["status"] == "completed", doc.get("error")
    assert doc["env_seen"] == {
        "USE_GPU_INFERENCE": "0",
        "VIV_VX_ENABLE_CACHE_GRAPH_BINARY": "1",
        "VIV_VX_CACHE_BINARY_GRAPH_DIR": "/var/cache/edgebench/vx",
    }
    assert doc["accelerator"] == {"name": "npu", "entry": "npu", "profile": "imx8mp", "runtime": "litert",
                                  "providers": [], "delegate": "/usr/lib/libvx_delegate.so"}  # fmt: skip
    assert doc["spec"]["delegate"] == "/usr/lib/libvx_delegate.so"


def test_imx8mp_npu_loads_the_vx_delegate_and_says_so_when_it_is_missing(agent_factory, push, tmp_path):
    # the real task: on this host the BSP's delegate is absent, which proves the
    # profile, not the user, chose it
    agent = agent_factory(sysfs_root=FIXTURES / "imx8mp")
    sha = push(agent.stub, tflite_builder.add_cumsum_add(tmp_path / "m.tflite"))
    doc = _result(agent, _start(agent, {"kind": "bench", "model_sha256": sha, "accelerator": "npu",
                                        "telemetry": False, "warmup_s": 0, "duration_s": 0.1}))  # fmt: skip
    assert doc["status"] == "failed" and doc["error_code"] == "bad_input"
    assert doc["error"].startswith("cannot load delegate /usr/lib/libvx_delegate.so")


@pytest.mark.parametrize(
    ("board", "model", "message"),
    [
        ("imx8mp", "onnx", "accelerator 'npu' of profile imx8mp is reached through litert, not onnxruntime"),
        ("orin-nano", "onnx", "profile orin-nano has no accelerator 'npu'; available: gpu"),
        (
            "agx-orin",
            "tflite",
            "accelerator 'npu' of profile agx-orin is reached through onnxruntime, not litert",
        ),
    ],
)
def test_accelerator_the_board_lacks_is_bad_input_before_a_run_exists(
    agent_factory, push, tmp_path, board, model, message
):
    agent = agent_factory(sysfs_root=FIXTURES / board)
    path = (
        onnx_graphs.single_add(tmp_path / "m.onnx")
        if model == "onnx"
        else tflite_builder.add_cumsum_add(tmp_path / "m.tflite")
    )
    sha = push(agent.stub, path)
    with pytest.raises(grpc.RpcError) as exc:
        _start(agent, {"kind": "bench", "model_sha256": sha, "accelerator": "npu"})
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in exc.value.details()
    assert list(agent.stub.ListRuns(pb.ListRunsRequest()).runs) == []


def test_controller_cannot_set_the_worker_environment(agent, push, tmp_path):
    sha = push(agent.stub, onnx_graphs.single_add(tmp_path / "m.onnx"))
    with pytest.raises(grpc.RpcError) as exc:
        _start(agent, {"kind": "bench", "model_sha256": sha, "env": {"LD_PRELOAD": "/tmp/x.so"}})
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "env comes from the agent's hardware profile" in exc.value.details()


@pytest.mark.openvino
@pytest.mark.skipif(not OV_AGENT.exists(), reason=".venv-openvino (onnxruntime-openvino) is missing")
def test_accelerator_npu_on_a_board_whose_npu_is_the_openvino_ep(tmp_path, monkeypatch, capsys):
    """A board profile whose NPU is reached through a partitioning EP: the
    agent runs a vendor onnxruntime build (.venv-openvino), the CLI says only
    ``--accelerator npu``, and the unsupported middle op is the named fallback."""
    pdir = tmp_path / "profiles"
    pdir.mkdir()
    (pdir / "ov-board.yaml").write_text(
        textwrap.dedent(
            """\
            name: ov-board
            description: a board whose NPU is OpenVINO's (test profile)
            family: generic
            soc: x86
            detect: {fallback: false}
            accelerators:
              npu:
                runtime: onnxruntime
                providers: [OpenVINOExecutionProvider, CPUExecutionProvider]
                provider_options:
                  OpenVINOExecutionProvider: {device_type: CPU}
            """
        )
    )
    ap = spawn_agent(
        tmp_path / "state",
        "--profile",
        "ov-board",
        agent_bin=OV_AGENT,
        env={"EDGEBENCH_PROFILES_DIR": str(pdir)},
    )
    try:
        monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'r.db'}")
        monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
        model = onnx_graphs.middle_unsupported(tmp_path / "mid.onnx")
        out = tmp_path / "r.json"
        common = ["--agent", ap.address, str(model), "--accelerator", "npu", "--no-telemetry", "--quiet"]
        rc = main(["bench", *common, "--warmup", "0", "--duration", "0.2", "--min-iterations", "3",
                   "--fail-on-fallback", "--json", str(out)])  # fmt: skip
        assert rc == 3, capsys.readouterr().err
        doc = json.loads(out.read_text())
        assert doc["accelerator"]["profile"] == "ov-board"
        assert doc["spec"]["providers"] == ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
        p = doc["placement"]
        assert p["fallback"] is True and p["partitions"] == 2
        assert [n["op_type"] for n in p["fallback_nodes"]] == ["Hardmax"]
    finally:
        ap.stop()
