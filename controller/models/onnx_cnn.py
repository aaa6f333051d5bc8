"""The demo CNN and its siblings, built as ONNX by our own code.

A small ResNet-style classifier: a stride-2 stem, then stages of
conv/batch-norm/relu blocks with residual adds, global average pool and a
fully connected head. Weights are He-initialised from a fixed seed, so the
file (and its sha256) is the same on every machine.

- ``demo_cnn``: 1x3x128x128, ~1-5 ms per inference on one laptop core.
- ``tiny_cnn``: ~1 ms, for the harness-overhead benchmark.
- ``large_cnn``: ~5 MB of weights, for the placement-overhead benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.n = 0

    def _name(self, kind: str) -> str:
        self.n += 1
        return f"{kind}_{self.n}"

    def const(self, name: str, arr: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], name: str | None = None, **attrs: object) -> str:
        from onnx import helper

        name = name or self._name(op.lower())
        out = name + "_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def conv_bn_relu(
        self, x: str, cin: int, cout: int, stride: int = 1, relu: bool = True, k: int = 3
    ) -> str:
        base = self._name("block")
        w = (self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        y = self.node(
            "Conv",
            [x, self.const(base + ".w", w)],
            name=base + "/conv",
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
        )
        bn = [
            self.const(base + ".gamma", self.rng.uniform(0.5, 1.5, cout).astype(np.float32)),
            self.const(base + ".beta", (self.rng.standard_normal(cout) * 0.1).astype(np.float32)),
            self.const(base + ".mean", (self.rng.standard_normal(cout) * 0.1).astype(np.float32)),
            self.const(base + ".var", self.rng.uniform(0.5, 1.5, cout).astype(np.float32)),
        ]
        y = self.node("BatchNormalization", [y, *bn], name=base + "/bn", epsilon=1e-5)
        if relu:
            y = self.node("Relu", [y], name=base + "/relu")
        return y


def build_cnn(
    path: str | Path,
    size: int = 128,
    widths: tuple[int, ...] = (16, 32, 64, 128),
    blocks: int = 1,
    classes: int = 100,
    seed: int = 0,
    batch: int | str = 1,
) -> Path:
    """Write a ResNet-ish CNN to ``path``; ``batch`` may be a symbol ("N") for a dynamic batch."""
    import onnx
    from onnx import TensorProto, helper

    b = _Builder(seed)
    x = b.conv_bn_relu("image", 3, widths[0], stride=2)
    cin = widths[0]
    for si, w in enumerate(widths):
        x = b.conv_bn_relu(x, cin, w, stride=1 if si == 0 else 2)
        for _ in range(blocks):
            y = b.conv_bn_relu(x, w, w)
            y = b.conv_bn_relu(y, w, w, relu=False)
            x = b.node("Relu", [b.node("Add", [x, y])])
        cin = w
    x = b.node("GlobalAveragePool", [x], name="pool")
    x = b.node("Flatten", [x], name="flatten", axis=1)
    fw = (b.rng.standard_normal((classes, cin)) * 0.05).astype(np.float32)
    x = b.node(
        "Gemm", [x, b.const("fc.w", fw), b.const("fc.b", np.zeros(classes, np.float32))], name="fc", transB=1
    )
    b.nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        b.nodes,
        "edgebench_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgebench")
    model.ir_version = 8  # readable by ORT builds back to 1.10 (JetPack images)
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def demo_cnn(path: str | Path) -> Path:
    return build_cnn(path, size=128, widths=(16, 32, 64, 128), blocks=1, classes=100)


def tiny_cnn(path: str | Path) -> Path:
    return build_cnn(path, size=96, widths=(16, 32, 64), blocks=1, classes=10, seed=1)


def large_cnn(path: str | Path) -> Path:
    return build_cnn(path, size=64, widths=(24, 48, 96, 192), blocks=1, classes=1000, seed=2)
