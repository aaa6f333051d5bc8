"""Multiply-accumulates per node of an ONNX graph at concrete input shapes:
what "the share of MACs left in INT8" counts. Conv, ConvTranspose, MatMul and
Gemm carry the arithmetic; other nodes count 0."""

from __future__ import annotations

from typing import Any

import numpy as np


def _dims(vi: Any) -> list[int] | None:
    shape = vi.type.tensor_type.shape
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in shape.dim]
    return dims if dims and all(d > 0 for d in dims) else None


def node_macs(model: Any, input_shapes: dict[str, list[int]]) -> dict[str, int]:
    """{node name: MACs} with the graph's inputs fixed to ``input_shapes``."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for inp in m.graph.input:
        if inp.name in input_shapes:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, input_shapes[inp.name], strict=False):
                d.ClearField("dim_param")
                d.dim_value = int(v)
    try:
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:  # a graph ONNX cannot infer: no MAC figures, not an error
        return {}
    shapes = {vi.name: _dims(vi) for vi in [*m.graph.value_info, *m.graph.input, *m.graph.output]}
    for t in m.graph.initializer:
        shapes[t.name] = list(t.dims)
    out = {}
    for n in m.graph.node:
        o = shapes.get(n.output[0]) if n.output else None
        if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1:
            w = shapes.get(n.input[1])
            if o and w:
                # the weight's shape already divides by the group: (Cout, Cin/group, k...)
                if n.op_type == "Conv":  # every output element sums Cin/group * k...
                    out[n.name] = int(np.prod(o)) * int(np.prod(w[1:]))
                else:  # each input element feeds Cout/group * k... outputs
                    x = shapes.get(n.input[0])
                    out[n.name] = int(np.prod(x)) * int(np.prod(w[1:])) if x else 0
        elif n.op_type in ("MatMul", "Gemm") and len(n.input) > 1:
            a = shapes.get(n.input[0])
            if o and a:
                k = (
                    a[-2]
                    if n.op_type == "Gemm" and any(x.name == "transA" and x.i for x in n.attribute)
                    else a[-1]
                )
                out[n.name] = int(np.prod(o)) * int(k)
    return out
