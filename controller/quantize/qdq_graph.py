"""A QDQ model read as its float graph plus quantization parameters: which
tensor each QuantizeLinear/DequantizeLinear pair quantizes, with what scale
and zero point, and which compute node reads or writes a quantized value.
``hazards.py`` reads hazards from it; ``search.py`` walks the graph through it.

ONNX Runtime's QDQ quantizer (and NNCF's ONNX backend) write
``T -> QuantizeLinear -> DequantizeLinear -> consumers``; weights are an
integer initializer read by a DequantizeLinear. A graph output that is
quantized is the DequantizeLinear's output, under the output's own name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass
class QParams:
    scale: np.ndarray  # scalar or per-axis
    zero_point: np.ndarray
    axis: int | None

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1

    @property
    def step(self) -> float:
        return float(np.max(self.scale))

    def range(self) -> tuple[float, float]:
        """The float range the integer type admits (per-tensor: exact; per-axis: the widest)."""
        info = np.iinfo(self.zero_point.dtype)
        z = float(np.max(self.zero_point)) if self.zero_point.size else 0.0
        return (info.min - z) * self.step, (info.max - z) * self.step


@dataclass
class QdqGraph:
    model: Any
    nodes: list[Any]  # compute nodes (no Q/DQ), in graph order
    producer: dict[str, Any] = field(default_factory=dict)  # float tensor name -> compute node
    consumers: dict[str, list[Any]] = field(default_factory=dict)  # float tensor -> compute nodes
    act: dict[str, QParams] = field(default_factory=dict)  # quantized activation tensor -> params
    weights: dict[str, tuple[np.ndarray, QParams]] = field(default_factory=dict)  # DQ output -> int array
    inits: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    source: dict[str, str] = field(default_factory=dict)  # DQ output -> the float tensor it stands for

    def float_inputs(self, node: Any) -> list[str]:
        """The node's inputs as float tensor names (a DequantizeLinear output -> what it stands for)."""
        return [self.source.get(i, i) for i in node.input if i]

    def float_outputs(self, node: Any) -> list[str]:
        return [self._out_name.get(o, o) for o in node.output if o]

    def constant(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        t = self.inits.get(name)
        return None if t is None else numpy_helper.to_array(t)

    _out_name: dict[str, str] = field(default_factory=dict)  # a Q input renamed for a graph output


def read(model: Any) -> QdqGraph:
    """The float view of a QDQ ``ModelProto`` (a float model reads as one with no quantized tensor)."""
    from onnx import numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    arr = {}

    def const(name: str) -> np.ndarray | None:
        if name not in arr and name in inits:
            arr[name] = numpy_helper.to_array(inits[name])
        return arr.get(name)

    out = QdqGraph(model, [], inits=inits)
    out.inputs = [i.name for i in g.input if i.name not in inits]
    out.outputs = [o.name for o in g.output]
    q_of: dict[str, tuple[str, QParams]] = {}  # Q output -> (float tensor, params)
    for n in g.node:
        if n.op_type == "QuantizeLinear" and len(n.input) >= 2 and const(n.input[1]) is not None:
            zp = const(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros((), np.uint8)
            axis = next((a.i for a in n.attribute if a.name == "axis"), None)
            q_of[n.output[0]] = (n.input[0], QParams(const(n.input[1]), zp, axis))
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        src = n.input[0]
        if src in q_of:  # an activation: T -> Q -> DQ
            t, p = q_of[src]
            out.act[t] = p
            out.source[n.output[0]] = t
        elif const(src) is not None and len(n.input) >= 2 and const(n.input[1]) is not None:
            zp = const(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros((), const(src).dtype)
            axis = next((a.i for a in n.attribute if a.name == "axis"), None)
            out.weights[n.output[0]] = (const(src), QParams(const(n.input[1]), zp, axis))
            out.source[n.output[0]] = n.output[0]
    # a quantized graph output: producer -> X (renamed) -> Q -> DQ -> output; read X as the output
    for dq_out, t in list(out.source.items()):
        if dq_out in out.outputs and t != dq_out:
            out._out_name[t] = dq_out
            out.act[dq_out] = out.act.pop(t)
            out.source[dq_out] = dq_out
    for n in g.node:
        if n.op_type in QDQ_OPS:
            continue
        out.nodes.append(n)
        for o in out.float_outputs(n):
            out.producer[o] = n
        for i in out.float_inputs(n):
            out.consumers.setdefault(i, []).append(n)
    return out
