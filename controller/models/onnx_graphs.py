"""Small ONNX test graphs with a known placement.

The OpenVINO execution provider (onnxruntime-openvino 1.24) has no kernel for
``Hardmax``; ORT then gives that node to the CPU provider and OpenVINO takes
the supported nodes on either side as two separate subgraphs. Each side is a
Mul/Add/Relu chain so it is big enough for the EP to claim.

- ``middle_unsupported``: 3 ops -> Hardmax -> 3 ops: 2 OpenVINO partitions, 1 CPU node.
- ``fully_supported``: the same with Softmax in the middle: 1 partition, no fallback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

UNSUPPORTED_OP = "Hardmax"


def _chain(mid_op: str, n: int = 8) -> object:
    from onnx import TensorProto, helper, numpy_helper

    nodes = []

    def block(prefix: str, x: str) -> str:
        nodes.append(helper.make_node("Mul", [x, "scale"], [prefix + "_m"], name=prefix + "_mul"))
        nodes.append(helper.make_node("Add", [prefix + "_m", "bias"], [prefix + "_a"], name=prefix + "_add"))
        nodes.append(helper.make_node("Relu", [prefix + "_a"], [prefix + "_r"], name=prefix + "_relu"))
        return prefix + "_r"

    h = block("pre", "x")
    nodes.append(helper.make_node(mid_op, [h], ["mid_out"], name="mid", axis=-1))
    y = block("post", "mid_out")
    nodes[-1].output[0] = "y"
    del y
    inits = [
        numpy_helper.from_array(np.full((1, n), 2.0, np.float32), "scale"),
        numpy_helper.from_array(np.ones((1, n), np.float32), "bias"),
    ]
    graph = helper.make_graph(
        nodes,
        f"edgebench_{mid_op.lower()}_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgebench")
    model.ir_version = 8
    return model


def _save(model: object, path: str | Path) -> Path:
    import onnx

    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def middle_unsupported(path: str | Path) -> Path:
    return _save(_chain(UNSUPPORTED_OP), path)


def fully_supported(path: str | Path) -> Path:
    return _save(_chain("Softmax"), path)


def single_add(path: str | Path) -> Path:
    """y = x + 1 on a 1x4 float: the smallest valid model (input-checking tests)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"], name="add")],
        "edgebench_add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.ones((1, 4), np.float32), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, path)
