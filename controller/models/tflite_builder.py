"""Build .tflite flatbuffers with our own code.

No TensorFlow converter is needed: the LiteRT wheel ships the flatbuffer schema's
object API (``schema_py_generated``), which we use as a library to lay out
tensors, buffers and operators directly. The models are small and exact, so
tests know which ops a delegate must take and which it must leave on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError:  # pragma: no cover - tflite_runtime-only hosts
        from tflite_runtime import schema_py_generated as s  # type: ignore[no-redef]
    return s


_DTYPES = {
    np.dtype(np.float32): "FLOAT32",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int8): "INT8",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int64): "INT64",
}


class TFLiteGraph:
    """A one-subgraph TFLite model under construction."""

    def __init__(self) -> None:
        self.s = _schema()
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [self.s.BufferT()]  # buffer 0: the empty sentinel
        self.ops: list[Any] = []
        self.opcodes: dict[int, int] = {}
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    def tensor(
        self,
        name: str,
        shape: list[int],
        dtype: Any = np.float32,
        data: np.ndarray | None = None,
        scale: float | list[float] | None = None,
        zero_point: int | list[int] | None = None,
        quantized_dimension: int = 0,
    ) -> int:
        t = self.s.TensorT()
        t.name = name
        t.shape = list(shape)
        t.type = getattr(self.s.TensorType, _DTYPES[np.dtype(dtype)])
        t.buffer = 0
        if data is not None:
            buf = self.s.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data, dtype=dtype).tobytes(), dtype=np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = self.s.QuantizationParametersT()
            q.scale = list(np.atleast_1d(np.asarray(scale, dtype=np.float64)).tolist())
            q.zeroPoint = list(np.atleast_1d(np.asarray(zero_point or 0, dtype=np.int64)).tolist())
            q.quantizedDimension = quantized_dimension
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def input(self, name: str, shape: list[int], dtype: Any = np.float32, **quant: Any) -> int:
        idx = self.tensor(name, shape, dtype, **quant)
        self.inputs.append(idx)
        return idx

    def op(
        self,
        code: str,
        inputs: list[int],
        outputs: list[int],
        options: Any = None,
        options_type: str | None = None,
    ) -> None:
        builtin = getattr(self.s.BuiltinOperator, code)
        if builtin not in self.opcodes:
            self.opcodes[builtin] = len(self.opcodes)
        o = self.s.OperatorT()
        o.opcodeIndex = self.opcodes[builtin]
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(self.s.BuiltinOptions, options_type or type(options).__name__[:-1])
            o.builtinOptions = options
        self.ops.append(o)

    def build(self) -> bytes:
        import flatbuffers

        s = self.s
        sg = s.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators = self.tensors, self.inputs, self.outputs, self.ops
        sg.name = "main"
        m = s.ModelT()
        m.version = 3
        codes: list[Any] = [None] * len(self.opcodes)
        for builtin, i in self.opcodes.items():
            oc = s.OperatorCodeT()
            oc.builtinCode = builtin
            # codes >= 127 live only in the new int32 field; old readers read the int8 one
            oc.deprecatedBuiltinCode = min(builtin, 127)
            oc.version = 1
            codes[i] = oc
        m.operatorCodes = codes
        m.subgraphs = [sg]
        # a serving_default signature, as TensorFlow's converter writes: tools
        # that address a model by signature (ai-edge-quantizer) need one
        sig = s.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = "serving_default", 0
        sig.inputs = [self._tensor_map(i) for i in self.inputs]
        sig.outputs = [self._tensor_map(i) for i in self.outputs]
        m.signatureDefs = [sig]
        m.buffers = self.buffers
        m.description = "edgebench"
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    def _tensor_map(self, index: int) -> Any:
        tm = self.s.TensorMapT()
        name = self.tensors[index].name
        tm.name = name.decode() if isinstance(name, bytes) else name
        tm.tensorIndex = index
        return tm

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.build())
        return path


def _add(g: TFLiteGraph, a: int, b: int, out: int) -> None:
    opts = g.s.AddOptionsT()
    g.op("ADD", [a, b], [out], opts, "AddOptions")


def add_cumsum_add(path: str | Path, n: int = 64) -> Path:
    """x -> ADD -> CUMSUM -> ADD -> y. XNNPACK takes both ADDs, CUMSUM stays on
    the builtin CPU kernel: two delegate partitions around one CPU op."""
    g = TFLiteGraph()
    x = g.input("x", [1, n])
    c1 = g.tensor("c1", [1, n], data=np.ones((1, n), np.float32))
    a = g.tensor("a", [1, n])
    _add(g, x, c1, a)
    axis = g.tensor("axis", [], np.int32, data=np.array(1, np.int32))
    cs = g.tensor("cs", [1, n])
    g.op("CUMSUM", [a, axis], [cs], g.s.CumsumOptionsT(), "CumsumOptions")
    c2 = g.tensor("c2", [1, n], data=np.full((1, n), 2.0, np.float32))
    y = g.tensor("y", [1, n])
    _add(g, cs, c2, y)
    g.outputs = [y]
    return g.save(path)


def _conv(
    g: TFLiteGraph,
    x: int,
    cin: int,
    cout: int,
    hw: int,
    stride: int,
    rng: np.random.Generator,
    name: str,
) -> tuple[int, int]:
    w = (rng.standard_normal((cout, 3, 3, cin)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
    wt = g.tensor(f"{name}/w", list(w.shape), data=w)
    bt = g.tensor(f"{name}/b", [cout], data=np.zeros(cout, np.float32))
    ohw = (hw + stride - 1) // stride
    out = g.tensor(f"{name}/out", [1, ohw, ohw, cout])
    o = g.s.Conv2DOptionsT()
    o.padding = g.s.Padding.SAME
    o.strideW = o.strideH = stride
    o.fusedActivationFunction = g.s.ActivationFunctionType.RELU
    o.dilationWFactor = o.dilationHFactor = 1
    g.op("CONV_2D", [x, wt, bt], [out], o, "Conv2DOptions")
    return out, ohw


def float_cnn(path: str | Path, size: int = 64, seed: int = 0) -> Path:
    """A small float CNN: 3 conv+relu blocks, global mean, fully connected (NHWC)."""
    rng = np.random.default_rng(seed)
    g = TFLiteGraph()
    x = g.input("image", [1, size, size, 3])
    h, hw, cin = x, size, 3
    for i, cout in enumerate((16, 32, 64)):
        h, hw = _conv(g, h, cin, cout, hw, 2, rng, f"conv{i}")
        cin = cout
    axes = g.tensor("axes", [2], np.int32, data=np.array([1, 2], np.int32))
    pooled = g.tensor("pooled", [1, cin])
    g.op("MEAN", [h, axes], [pooled], g.s.ReducerOptionsT(), "ReducerOptions")
    fw = (rng.standard_normal((10, cin)) * 0.1).astype(np.float32)
    fwt = g.tensor("fc/w", [10, cin], data=fw)
    fbt = g.tensor("fc/b", [10], data=np.zeros(10, np.float32))
    logits = g.tensor("logits", [1, 10])
    g.op(
        "FULLY_CONNECTED", [pooled, fwt, fbt], [logits], g.s.FullyConnectedOptionsT(), "FullyConnectedOptions"
    )
    g.outputs = [logits]
    return g.save(path)


def int8_conv(path: str | Path, size: int = 32, seed: int = 0) -> Path:
    """An int8-quantized model: int8 input (scale 1/255*2, zero point -1) -> CONV_2D
    (per-channel int8 weights, int32 bias) with fused RELU -> int8 output."""
    rng = np.random.default_rng(seed)
    g = TFLiteGraph()
    in_scale, in_zp = 2.0 / 255.0, -1  # real range [-1, 1]
    cin, cout = 3, 8
    x = g.input("image", [1, size, size, cin], np.int8, scale=in_scale, zero_point=in_zp)
    w = rng.integers(-127, 128, size=(cout, 3, 3, cin), dtype=np.int8)
    w_scales = (rng.uniform(0.5, 1.5, cout) * 0.01).astype(np.float32)
    wt = g.tensor("conv/w", list(w.shape), np.int8, data=w, scale=w_scales.tolist(), zero_point=[0] * cout)
    bias_scales = [in_scale * float(s) for s in w_scales]
    bt = g.tensor(
        "conv/b", [cout], np.int32, data=np.zeros(cout, np.int32), scale=bias_scales, zero_point=[0] * cout
    )
    out = g.tensor("conv/out", [1, size, size, cout], np.int8, scale=0.05, zero_point=-128)
    o = g.s.Conv2DOptionsT()
    o.padding = g.s.Padding.SAME
    o.strideW = o.strideH = 1
    o.fusedActivationFunction = g.s.ActivationFunctionType.RELU
    o.dilationWFactor = o.dilationHFactor = 1
    g.op("CONV_2D", [x, wt, bt], [out], o, "Conv2DOptions")
    g.outputs = [out]
    return g.save(path)


def uint8_add(path: str | Path, n: int = 16) -> Path:
    """A uint8-quantized ADD (input range [0, 1] via scale 1/255, zero point 0)."""
    g = TFLiteGraph()
    x = g.input("x", [1, n], np.uint8, scale=1.0 / 255.0, zero_point=0)
    c = g.tensor("c", [1, n], np.uint8, data=np.full((1, n), 10, np.uint8), scale=1.0 / 255.0, zero_point=0)
    y = g.tensor("y", [1, n], np.uint8, scale=2.0 / 255.0, zero_point=0)
    _add(g, x, c, y)
    g.outputs = [y]
    return g.save(path)
