"""`edgebench reference`: expected outputs of the float model on CPU, checked
against numpy on the model's own weights; bad inputs exit 2 with one line."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from controller.cli import main


def test_reference_outputs_match_numpy(tiny_onnx_model, tmp_path, capsys):
    m = onnx.load(str(tiny_onnx_model))
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    x = np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32)
    np.savez(tmp_path / "x.npz", **{m.graph.input[0].name: x})
    out = tmp_path / "ref.npz"
    assert (
        main(["reference", str(tiny_onnx_model), "--inputs", str(tmp_path / "x.npz"), "--out", str(out)]) == 0
    )
    with np.load(out) as z:  # REF.npz (DESIGN.md): inputs/NAME and outputs/NAME
        got = z["outputs/" + m.graph.output[0].name]
        np.testing.assert_array_equal(z["inputs/" + m.graph.input[0].name], x)
    np.testing.assert_allclose(got, np.maximum(x @ init["w"] + init["b"], 0), rtol=1e-4, atol=1e-4)


def test_reference_runs_each_sample_of_the_first_axis(tiny_onnx_model, tmp_path):
    m = onnx.load(str(tiny_onnx_model))
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    # six samples of shape (64,): each gets the model's batch axis of 1
    x = np.random.default_rng(2).standard_normal((6, 64)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    out = tmp_path / "ref.npz"
    assert (
        main(["reference", str(tiny_onnx_model), "--inputs", str(tmp_path / "x.npz"), "--out", str(out)]) == 0
    )
    with np.load(out) as z:
        y = z["outputs/y"]
    assert y.shape == (6, 64)
    np.testing.assert_allclose(y, np.maximum(x @ init["w"] + init["b"], 0), rtol=1e-4, atol=1e-4)
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 63), np.float32))
    assert (
        main(["reference", str(tiny_onnx_model), "--inputs", str(tmp_path / "bad.npz"), "--out", str(out)])
        == 2
    )


def test_reference_tflite(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from controller.models.tflite_builder import float_cnn

    model = float_cnn(tmp_path / "c.tflite", size=16)
    d = Interpreter(model_path=str(model)).get_input_details()[0]
    np.savez(tmp_path / "x.npz", **{d["name"]: np.ones(d["shape"], dtype=d["dtype"])})
    out = tmp_path / "r.npz"
    assert main(["reference", str(model), "--inputs", str(tmp_path / "x.npz"), "--out", str(out)]) == 0
    with np.load(out) as z:
        assert len(z.files) >= 1 and np.isfinite(z[z.files[0]]).all()


def test_reference_bad_inputs(tiny_onnx_model, tmp_path, capsys):
    np.savez(tmp_path / "wrong.npz", nope=np.zeros((1, 64), np.float32))
    args = ["--out", str(tmp_path / "r.npz")]
    assert main(["reference", str(tiny_onnx_model), "--inputs", str(tmp_path / "wrong.npz"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "edgebench: error: the inputs file: 'nope' is not a model input; model inputs: x"
    trunc = tmp_path / "t.onnx"
    trunc.write_bytes(tiny_onnx_model.read_bytes()[:100])
    assert main(["reference", str(trunc), "--inputs", str(tmp_path / "wrong.npz"), *args]) == 2
    assert "not a loadable ONNX model" in capsys.readouterr().err
    assert not (tmp_path / "r.npz").exists()


def test_a_node_failing_inside_the_model_is_one_line_and_a_run_failure(tmp_path, capfd):
    from conftest import inner_reshape_model

    inner_reshape_model(tmp_path / "reshape.onnx")  # a 1 x 6 sample fits; the Reshape inside cannot be done
    np.savez(tmp_path / "x.npz", x=np.ones((2, 6), np.float32))
    argv = ["reference", str(tmp_path / "reshape.onnx"), "--inputs", str(tmp_path / "x.npz")]
    assert main([*argv, "--out", str(tmp_path / "ref.npz")]) == 1
    err = capfd.readouterr().err  # the process's fd 2: ORT's own logger writes there, not to sys.stderr
    assert err.count("\n") == 1 and "sample 0: inference failed inside the model:" in err
    assert "inner_reshape" in err and "onnxruntime:" not in err.split("model:")[0]
    assert "\x1b[" not in err  # no colour codes
    assert not (tmp_path / "ref.npz").exists()
