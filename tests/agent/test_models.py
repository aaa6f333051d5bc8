"""Models built by our own code (ONNX via onnx.helper, TFLite via the flatbuffer
schema), and the agent's dependency-free ONNX protobuf reader."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from agent import onnx_proto
from controller.models import onnx_cnn, onnx_graphs, tflite_builder


def test_demo_cnn_is_a_realistic_conv_bn_relu_resnet(tmp_path):
    p = onnx_cnn.demo_cnn(tmp_path / "demo.onnx")
    m = onnx.load(str(p))
    ops = Counter(n.op_type for n in m.graph.node)
    assert ops["Conv"] >= 8 and ops["BatchNormalization"] == ops["Conv"] and ops["Relu"] >= 8
    assert ops["Add"] == 4 and ops["GlobalAveragePool"] == 1 and ops["Gemm"] == 1
    s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    (inp,) = s.get_inputs()
    assert inp.shape == [1, 3, 128, 128]
    (y,) = s.run(None, {"image": np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)})
    assert y.shape == (1, 100) and np.isfinite(y).all() and y.std() > 0


def test_models_are_reproducible_byte_for_byte(tmp_path):
    a = onnx_cnn.demo_cnn(tmp_path / "a.onnx").read_bytes()
    b = onnx_cnn.demo_cnn(tmp_path / "b.onnx").read_bytes()
    assert a == b
    assert (
        tflite_builder.int8_conv(tmp_path / "a.tflite").read_bytes()
        == tflite_builder.int8_conv(tmp_path / "b.tflite").read_bytes()
    )


def test_large_cnn_is_about_5mb_and_tiny_is_small(tmp_path):
    assert 4.5e6 <= onnx_cnn.large_cnn(tmp_path / "l.onnx").stat().st_size <= 6e6
    assert onnx_cnn.tiny_cnn(tmp_path / "t.onnx").stat().st_size < 1e6


def test_dynamic_batch_variant(tmp_path):
    p = onnx_cnn.build_cnn(tmp_path / "dyn.onnx", size=32, widths=(8, 16), batch="N")
    s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    assert s.get_inputs()[0].shape == ["N", 3, 32, 32]
    assert s.run(None, {"image": np.zeros((3, 3, 32, 32), np.float32)})[0].shape == (3, 100)


def test_openvino_test_graphs_put_the_op_in_the_middle(tmp_path):
    m = onnx.load(str(onnx_graphs.middle_unsupported(tmp_path / "m.onnx")))
    assert [n.op_type for n in m.graph.node] == ["Mul", "Add", "Relu", "Hardmax", "Mul", "Add", "Relu"]
    f = onnx.load(str(onnx_graphs.fully_supported(tmp_path / "f.onnx")))
    assert f.graph.node[3].op_type == "Softmax"


def test_tflite_models_load_and_run_in_litert(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    for build, out_shape in (
        (tflite_builder.add_cumsum_add, (1, 64)),
        (tflite_builder.float_cnn, (1, 10)),
        (tflite_builder.int8_conv, (1, 32, 32, 8)),
        (tflite_builder.uint8_add, (1, 16)),
    ):
        it = Interpreter(model_path=str(build(tmp_path / f"{build.__name__}.tflite")))
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.ones(d["shape"], d["dtype"]))
        it.invoke()
        assert tuple(it.get_output_details()[0]["shape"]) == out_shape


def test_add_cumsum_add_computes_what_it_says(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite_builder.add_cumsum_add(tmp_path / "acs.tflite", n=8)))
    it.allocate_tensors()
    x = np.arange(8, dtype=np.float32).reshape(1, 8)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_allclose(y, np.cumsum(x + 1, axis=1) + 2)


def test_onnx_proto_reader_matches_onnx(tmp_path):
    p = onnx_cnn.demo_cnn(tmp_path / "demo.onnx")
    nodes, inputs = onnx_proto.read_graph(p)
    ref = onnx.load(str(p)).graph
    assert [(n.name, n.op_type, n.inputs, n.outputs) for n in nodes] == [
        (n.name, n.op_type, list(n.input), list(n.output)) for n in ref.node
    ]
    assert inputs == ["image"]
    assert onnx_proto.check_whole(p) is None


def test_onnx_proto_reader_spots_truncation_and_junk(tmp_path):
    data = onnx_cnn.tiny_cnn(tmp_path / "t.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[:-1000])
    assert onnx_proto.check_whole(tmp_path / "cut.onnx").startswith("truncated")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07hello world, not protobuf at all \xff\xff")
    assert onnx_proto.check_whole(tmp_path / "junk.onnx") is not None
    with pytest.raises(onnx_proto.Truncated):
        onnx_proto.read_graph(tmp_path / "cut.onnx")
