"""The ONNX graphs localize builds on the controller (it has onnx; the board
does not need it): the device model's tensors matched to the float model's,
the cut points in topological order, and the hybrid model of a cut.

Matching follows ONNX Runtime's ``qdq_loss_debug.create_activation_matching``
(onnxruntime/quantization/qdq_loss_debug.py): a QDQ model's tensor is the
float model's tensor X when it is the output of a DequantizeLinear fed by a
QuantizeLinear of X (ORT names it ``X_DequantizeLinear_Output``; a graph output
keeps the name X and its producer's output becomes ``X_QuantizeLinearInput``),
read structurally here, so names of other quantizers match too. A tensor of
the same name in both graphs that no QDQ pair rewrote matches itself.

A hybrid at cut k: the device model computes every matched tensor produced
by the float graph's nodes 0..k (in topological order); the float model's
nodes after k read those device tensors instead of their own. One graph, so
one validate run scores it with the task metric and gates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import BadInput

DEV = "dev::"  # prefix of the device model's names inside a hybrid
QUANT_INPUT_SUFFIX = "_QuantizeLinearInput"  # ORT's name for a quantized graph output's producer
_SUFFIXES = (QUANT_INPUT_SUFFIX, "_QuantizeLinear_Input")


@dataclass
class Cut:
    """One cut point: the float tensor, its device twin, where it is made."""

    index: int  # position among the cut points (topological)
    tensor: str  # the float model's tensor
    device_tensor: str  # the device model's tensor holding its (dequantized) value
    node: str  # the float node producing it
    op: str
    depth: int  # the producing node's index in the float graph
    qdq: bool  # the device value is a DequantizeLinear output (quantized in the device model)


def load(path: Path, what: str) -> Any:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # DecodeError, OSError...
        raise BadInput(
            f"{what} {path.name} is not a readable ONNX model: {' '.join(str(exc).split())[:160]}"
        ) from None


def _strip(name: str) -> str:
    for s in _SUFFIXES:
        if name.endswith(s):
            return name[: -len(s)]
    return name


def _float_tensors(g: Any) -> set[str]:
    """The float graph's float activations (outputs of nodes, graph outputs)."""
    import onnx

    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.value_info, *g.output, *g.input]}
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, 0}
    out = set()
    for n in g.node:
        if n.op_type in ("Shape", "Constant", "ConstantOfShape", "Size"):
            continue
        for o in n.output:
            if o and types.get(o, 0) in floats:
                out.add(o)
    return out


def match(device: Any, float_model: Any) -> list[Cut]:
    """The cut points: float tensors with a device twin, in the float graph's
    topological order. BadInput when the graphs share no tensor at all."""
    fg, dg = float_model.graph, device.graph
    producer = {o: n for n in dg.node for o in n.output}
    twins: dict[str, tuple[str, bool]] = {}
    for n in dg.node:
        if n.op_type != "DequantizeLinear" or not n.input:
            continue
        q = producer.get(n.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue  # a weight's DQ (an initializer): no activation
        twins.setdefault(_strip(q.input[0]), (n.output[0], True))
    dev_made = {o for n in dg.node for o in n.output}
    cuts: list[Cut] = []
    candidates = _float_tensors(fg)
    for depth, n in enumerate(fg.node):
        for o in n.output:
            if o not in candidates:
                continue
            twin = twins.get(o)
            if twin is None and o in dev_made and producer[o].op_type not in ("QuantizeLinear",):
                twin = (o, False)  # left in float by the quantizer: the same tensor
            if twin is None:
                continue
            cuts.append(Cut(len(cuts), o, twin[0], n.name or o, n.op_type, depth, twin[1]))
    if not cuts:
        raise BadInput(
            "the float model's tensors cannot be matched to the model's: no tensor of one is a "
            "tensor (or a QuantizeLinear -> DequantizeLinear of one) of the other"
        )
    f_in = {i.name for i in fg.input} - {t.name for t in fg.initializer}
    d_in = {i.name for i in dg.input} - {t.name for t in dg.initializer}
    if f_in != d_in:
        raise BadInput(
            f"the float model's inputs ({', '.join(sorted(f_in))}) are not the model's "
            f"({', '.join(sorted(d_in))})"
        )
    return cuts


def _ancestors(g: Any, targets: set[str]) -> list[Any]:
    """The nodes of ``g`` needed for ``targets``, in graph order."""
    return prune(list(g.node), [], targets)[0]


def hybrid(device: Any, float_model: Any, cuts: list[Cut], k: int) -> Any:
    """The model whose tensors up to cut ``k`` are the device model's and whose
    nodes after it are the float model's (float outputs' names kept)."""
    import onnx
    from onnx import helper

    fg, dg = float_model.graph, device.graph
    cut_depth = cuts[k].depth
    twin = {c.tensor: c.device_tensor for c in cuts if c.depth <= cut_depth}
    dev_nodes = _ancestors(dg, set(twin.values()))
    inputs = {i.name for i in dg.input}
    dev_inits = {t.name for t in dg.initializer}

    def dev(name: str) -> str:
        return name if (not name or name in inputs and name not in dev_inits) else DEV + name

    nodes = []
    for n in dev_nodes:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.name = DEV + n.name
        m.input[:] = [dev(x) for x in n.input]
        m.output[:] = [dev(x) for x in n.output]
        nodes.append(m)
    outputs = {o.name for o in fg.output}
    for depth, n in enumerate(fg.node):
        m = onnx.NodeProto()
        m.CopyFrom(n)
        if depth > cut_depth:
            m.input[:] = [dev(twin[x]) if x in twin else x for x in n.input]
        else:
            # a float output the device now gives: the float node's copy is left unused (pruned)
            m.output[:] = [x + "::float" if x in twin and x in outputs else x for x in n.output]
        nodes.append(m)
    for o in outputs & set(twin):
        nodes.append(helper.make_node("Identity", [dev(twin[o])], [o], name=DEV + "out/" + o))
    inits = [_renamed(t, dev(t.name)) for t in dg.initializer]
    nodes, inits = prune(nodes, [*fg.initializer, *inits], outputs)
    graph = helper.make_graph(nodes, fg.name + "-hybrid", list(fg.input), list(fg.output), inits)
    opsets: dict[str, int] = {}
    for op in [*float_model.opset_import, *device.opset_import]:
        opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = max(float_model.ir_version, device.ir_version)
    return model


def _renamed(t: Any, name: str) -> Any:
    import onnx

    c = onnx.TensorProto()
    c.CopyFrom(t)
    c.name = name
    return c


def prune(nodes: list[Any], inits: list[Any], outputs: set[str]) -> tuple[list[Any], list[Any]]:
    """The nodes (in order) and initializers that ``outputs`` need; the rest dropped."""
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    need, stack = set(), [o for o in outputs if o in producer]
    while stack:
        i = producer[stack.pop()]
        if i in need:
            continue
        need.add(i)
        stack.extend(x for x in nodes[i].input if x in producer)
    kept = [nodes[i] for i in sorted(need)]
    used = {x for n in kept for x in n.input}
    return kept, [t for t in inits if t.name in used]


def save(model: Any, path: Path) -> Path:
    import onnx

    onnx.save(model, str(path))
    return path
