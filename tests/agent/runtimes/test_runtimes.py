"""Runners on real ONNX Runtime and LiteRT: options, inputs, and every bad input
named in issue 2 (one-line BadInput, exit code 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import put_artifact

from agent.errors import EXIT_BAD_INPUT, BadInput
from agent.load.task import open_model, run_task
from agent.names import model_format
from agent.runtimes.detect import runtime_info
from agent.runtimes.inputs import quantized_range
from agent.runtimes.litert import LiteRTRunner
from agent.runtimes.onnxruntime import OrtRunner
from agent.spec import RunSpec
from controller.models import onnx_cnn, onnx_graphs, tflite_builder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "add": onnx_graphs.single_add(d / "add.onnx"),
        "cnn": onnx_cnn.tiny_cnn(d / "tiny.onnx"),
        "int8": tflite_builder.int8_conv(d / "int8.tflite"),
        "uint8": tflite_builder.uint8_add(d / "uint8.tflite"),
        "float": tflite_builder.float_cnn(d / "float.tflite"),
    }


@pytest.fixture
def state(tmp_path):
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    return tmp_path


def spec_for(state: Path, model: Path, **kw) -> RunSpec:
    return RunSpec.from_dict(
        {"kind": "bench", "model_sha256": put_artifact(state, model), "model_name": model.name, **kw}
    )


def bad_input(state: Path, model: Path, **kw) -> str:
    """Run the task; assert it failed as bad input and return the one-line message."""
    msgs: list[dict] = []
    part = run_task(
        spec_for(state, model, duration_s=0, min_iterations=1, warmup_s=0, **kw),
        state / "runs/r1",
        msgs.append,
    )
    assert part is None
    err = [m for m in msgs if m["type"] == "error"]
    assert len(err) == 1 and err[0]["code"] == "bad_input", msgs
    assert "\n" not in err[0]["message"]
    assert BadInput.exit_code == EXIT_BAD_INPUT == 2
    return err[0]["message"]


# -- bad inputs --------------------------------------------------------------


def test_not_a_model_file_is_bad_input(state, tmp_path):
    junk = tmp_path / "notes.onnx"
    junk.write_text("this is not a model\n")
    msg = bad_input(state, junk)
    assert msg.startswith("not a model file") and "notes.onnx" in msg


def test_truncated_onnx_is_bad_input(state, models, tmp_path):
    data = models["cnn"].read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    msg = bad_input(state, cut)
    assert msg.startswith("truncated ONNX file cut.onnx")


def test_unknown_provider_names_the_available_ones(state, models):
    msg = bad_input(state, models["add"], providers=["WarpDriveExecutionProvider"])
    assert "unknown provider 'WarpDriveExecutionProvider'" in msg
    assert "available:" in msg and "CPUExecutionProvider" in msg


def test_unavailable_provider_alone_is_bad_input_naming_available(state, models):
    # TensorRT is a provider ORT knows but this CPU build lacks
    msg = bad_input(state, models["add"], providers=["TensorrtExecutionProvider"])
    assert "provider TensorrtExecutionProvider is not available" in msg
    assert "available: " in msg and "CPUExecutionProvider" in msg


def test_wrong_input_name_in_input_shape(state, models):
    msg = bad_input(state, models["add"], input_shapes={"pixels": [1, 4]})
    assert msg == "unknown input name 'pixels' in --input-shape; model inputs: x"


def test_wrong_input_shape_rank_and_fixed_dim(state, models):
    msg = bad_input(state, models["add"], input_shapes={"x": [1, 4, 4]})
    assert "wrong shape for input 'x'" in msg and "rank 3" in msg
    msg = bad_input(state, models["add"], input_shapes={"x": [2, 5]})
    assert "wrong shape for input 'x': 2x5, model expects Nx4" == msg  # N: the model's symbol


def test_wrong_input_name_and_shape_in_npz(state, models, tmp_path):
    z = tmp_path / "in.npz"
    np.savez(z, y=np.zeros((1, 4), np.float32))
    msg = bad_input(state, models["add"], inputs_sha256=put_artifact(state, z))
    assert "the inputs file: 'y' is not a model input; model inputs: x" == msg
    np.savez(z, x=np.zeros((1, 3), np.float32))
    msg = bad_input(state, models["add"], inputs_sha256=put_artifact(state, z))
    assert "the inputs file: input 'x' has shape 1x3; the model expects 1x4" == msg


def test_wrong_input_shape_for_tflite(state, models):
    msg = bad_input(state, models["float"], input_shapes={"image": [1, 64, 64]})
    assert "wrong shape for input 'image'" in msg


# ai_edge_litert.Delegate.__del__ trips over its own failed constructor; not ours
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_tflite_bad_delegate_path(state, models, tmp_path):
    msg = bad_input(state, models["float"], delegate=str(tmp_path / "libnope_delegate.so"))
    assert msg.startswith("cannot load delegate") and "libnope_delegate.so" in msg


def test_runtime_format_mismatch(state, models):
    msg = bad_input(state, models["float"], runtime="onnxruntime")
    assert msg == "runtime onnxruntime cannot run a tflite model"


def test_provider_for_tflite_and_delegate_for_onnx_are_bad_input(state, models):
    msg = bad_input(state, models["float"], providers=["CPUExecutionProvider"])
    assert msg == "--provider applies to onnxruntime; a .tflite model takes --delegate PATH"
    msg = bad_input(state, models["add"], delegate="/usr/lib/libvx_delegate.so")
    assert msg == "--delegate applies to litert; an ONNX model takes --provider NAME"


def test_missing_artifact(state):
    msgs: list[dict] = []
    spec = RunSpec.from_dict({"kind": "bench", "model_sha256": "a" * 64})
    assert run_task(spec, state / "runs/r1", msgs.append) is None
    assert msgs[-1]["code"] == "bad_input" and "not in the agent's store" in msgs[-1]["message"]


# -- options and inputs ------------------------------------------------------


def test_model_format_sniffs_bytes_not_names(models, tmp_path):
    renamed = tmp_path / "model.bin"
    shutil.copy(models["float"], renamed)
    assert model_format(renamed) == "tflite"
    assert model_format(models["cnn"]) == "onnx"


def test_ort_dynamic_batch_from_input_shape_and_npz(state, models, tmp_path):
    spec = spec_for(state, models["add"], input_shapes={"x": [3, 4]}, threads=1)
    runner, _, fmt, init_ms = open_model(spec, state / "runs/r1")
    assert fmt == "onnx" and init_ms > 0
    assert isinstance(runner, OrtRunner)
    assert runner.input_specs()[0].shape == [3, 4]
    feeds = runner.make_inputs(spec, None)
    assert feeds["x"].shape == (3, 4) and feeds["x"].dtype == np.float32
    z = tmp_path / "x.npz"
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.savez(z, x=x)
    out = runner.run(runner.make_inputs(spec, z))
    np.testing.assert_array_equal(out[0], x + 1)


def test_ort_provider_aliases_and_options(state, models):
    spec = spec_for(
        state, models["add"], providers=["cpu"], provider_options={"cpu": {"arena_extend_strategy": "1"}}
    )
    runner, *_ = open_model(spec, state / "runs/r1")
    assert runner.info()["providers"] == ["CPUExecutionProvider"]


def test_ort_graph_optimization_level_is_checked(state, models):
    msg = bad_input(state, models["add"], graph_optimization_level="ludicrous")
    assert "unknown graph optimization level 'ludicrous'" in msg


def test_litert_int8_inputs_cover_the_quantized_range(state, models):
    spec = spec_for(state, models["int8"], threads=1)
    runner, _, fmt, _ = open_model(spec, state / "runs/r1")
    assert fmt == "tflite" and isinstance(runner, LiteRTRunner)
    (inp,) = runner.input_specs()
    assert inp.dtype == np.int8
    scale, zp = inp.quantization
    assert zp == -1 and scale == pytest.approx(2 / 255, rel=1e-6)
    ((_, x),) = runner.make_inputs(spec, None)
    assert x.dtype == np.int8 and x.shape == (1, 32, 32, 3)
    # drawn across the representable range, not all zeros or one value
    assert x.min() <= -120 and x.max() >= 120
    lo, hi = quantized_range(np.dtype(np.int8), scale, zp)
    real = (x.astype(np.float32) - zp) * scale
    assert lo - 1e-6 <= real.min() and real.max() <= hi + 1e-6
    (y,) = runner.run(runner.make_inputs(spec, None))
    assert y.dtype == np.int8 and y.shape == (1, 32, 32, 8)


def test_litert_uint8_inputs(state, models):
    spec = spec_for(state, models["uint8"])
    runner, *_ = open_model(spec, state / "runs/r1")
    ((_, x),) = runner.make_inputs(spec, None)
    assert x.dtype == np.uint8 and x.max() > 200 and x.min() < 50
    (y,) = runner.run([(runner._in_idx[0], np.zeros((1, 16), np.uint8))])
    # (0 + 10/255) re-quantized at scale 2/255: 5
    assert y.dtype == np.uint8 and int(y[0, 0]) == 5


def test_litert_threads_and_info(state, models):
    spec = spec_for(state, models["float"], threads=2)
    runner, *_ = open_model(spec, state / "runs/r1")
    info = runner.info()
    assert info["name"] == "litert" and info["delegate"].startswith("XNNPACK")
    (y,) = runner.run(runner.make_inputs(spec, None))
    assert y.shape == (1, 10) and np.isfinite(y).all()


def test_runtime_info_reports_versions_and_providers():
    import onnxruntime

    info = runtime_info(probe=True)
    assert info["onnxruntime"]["version"] == onnxruntime.__version__
    assert "CPUExecutionProvider" in info["onnxruntime"]["providers"]
    assert info["litert"]["module"] in ("ai_edge_litert", "tflite_runtime")
    assert info["litert"]["delegates"]["XNNPACK"] == "builtin"


def test_options_under_a_short_and_a_full_provider_name_merge():
    from agent.runtimes.onnxruntime import OrtRunner

    spec = RunSpec(
        kind="bench",
        model_sha256="0" * 64,
        providers=["cpu"],
        provider_options={"cpu": {"a": "1"}, "CPUExecutionProvider": {"b": "2"}},
    )
    use, opts = OrtRunner()._providers(spec)
    assert use == ["CPUExecutionProvider"] and opts == [{"a": "1", "b": "2"}]


@pytest.mark.parametrize("providers", [[], ["cpu"]])
def test_strict_placement_with_only_the_cpu_provider_runs_and_says_it_had_nothing_to_refuse(
    state, models, providers
):
    # ORT refuses disable_cpu_ep_fallback next to an explicit CPU EP ("Conflicting
    # session configuration"): every graph used to fail on a CPU-only setup
    msgs: list[dict] = []
    spec = spec_for(
        state,
        models["add"],
        duration_s=0,
        min_iterations=3,
        warmup_s=0,
        strict_placement=True,
        providers=providers,
    )
    part = run_task(spec, state / "runs/r1", msgs.append)
    assert [m for m in msgs if m["type"] == "error"] == []
    assert part is not None and part["runtime"]["providers"] == ["CPUExecutionProvider"]
    assert part["runtime"]["strict_placement"].startswith("no-op: only the CPU execution provider")


def test_a_node_that_fails_inside_the_model_is_a_run_failure_not_bad_input(state, tmp_path):
    from conftest import inner_reshape_model

    path = inner_reshape_model(tmp_path / "reshape.onnx")
    msgs: list[dict] = []
    spec = spec_for(state, path, duration_s=0, min_iterations=1, warmup_s=0, input_shapes={"x": [1, 6]})
    assert run_task(spec, state / "runs/r1", msgs.append) is None
    [err] = [m for m in msgs if m["type"] == "error"]
    # the input fits the declared N x 6: the failure is the model's (exit 1), said on one line
    assert err["code"] == "run_failed" and "\n" not in err["message"]
    assert err["message"].startswith("first inference failed inside the model:")
    assert "inner_reshape" in err["message"] and "wrong input shape" not in err["message"]
    # an input that breaks the declared shape is still bad input
    assert "wrong shape for input 'x'" in bad_input(state, path, input_shapes={"x": [1, 5]})
