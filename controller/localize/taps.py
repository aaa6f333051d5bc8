"""localize's per-tensor figures: the matched tensors tapped as extra outputs
(for EPs that run the graph as nodes: CPU, XNNPACK-like, OpenVINO on CPU), in
batches bounded in memory.

Each batch is one validate run on the agent: the device model with the batch's
tensors as its outputs, compared there with the float model tapped the same
way and run on the board's CPU (ValidateSpec.float_model_sha256); only the
metrics come back. The same pair also runs on this host's CPU, which gives
the host's simulated QDQ value: a tensor where the device departs from the
host's simulation is device arithmetic, not quantization error.

Memory bound: the agent holds one sample's tapped tensors of both models,
at most ``budget`` bytes per model per sample (a tensor larger than the
budget is a batch of its own).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

from agent.spec import GATES
from controller.localize.graph import Cut

TAP = "tap::"
DEFAULT_BUDGET = 64 << 20  # bytes per model per sample
_UNKNOWN_BYTES = 4 << 20  # a tensor whose shape the inference leaves open


def sizes(float_model: Any, feeds: dict) -> dict[str, int]:
    """Bytes per sample of every float tensor, from ONNX shape inference
    with the inputs' own shapes (the first sample's)."""
    import onnx
    from onnx import shape_inference

    m = onnx.ModelProto()
    m.CopyFrom(float_model)
    for i in m.graph.input:
        if i.name in feeds:
            dims = i.type.tensor_type.shape.dim
            shape = list(feeds[i.name].shape[1:])
            if len(dims) == len(shape) + 1:
                shape = [1, *shape]
            if len(dims) == len(shape):
                for d, v in zip(dims, shape, strict=True):
                    d.ClearField("dim_param")
                    d.dim_value = int(v)
    try:
        m = shape_inference.infer_shapes(m)
    except Exception:  # an op the inference does not know: every tensor counts as unknown
        return {}
    out = {}
    for vi in [*m.graph.value_info, *m.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            n = 1
            for d in dims:
                n *= d.dim_value
            out[vi.name] = 4 * n
    return out


def batches(cuts: list[Cut], size: dict[str, int], budget: int = DEFAULT_BUDGET) -> list[list[Cut]]:
    out: list[list[Cut]] = [[]]
    used = 0
    for c in cuts:
        b = size.get(c.tensor, _UNKNOWN_BYTES)
        if out[-1] and used + b > budget:
            out.append([])
            used = 0
        out[-1].append(c)
        used += b
    return [b for b in out if b]


def tap_model(model: Any, pairs: list[tuple[str, str]]) -> Any:
    """``model`` with only ``pairs`` (tensor, output name) as outputs, through
    Identity nodes; nodes no tap needs are dropped."""
    import onnx
    from onnx import helper

    from controller.localize.graph import prune

    g = model.graph
    nodes = list(g.node) + [helper.make_node("Identity", [t], [o], name=o) for t, o in pairs]
    kept, inits = prune(nodes, list(g.initializer), {o for _, o in pairs})
    outputs = [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for _, o in pairs]
    graph = helper.make_graph(kept, g.name + "-taps", list(g.input), outputs, inits)
    m = helper.make_model(graph, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    return m


def tap_args(args: argparse.Namespace, model: Path, float_sha: str) -> argparse.Namespace:
    """The validate options of a tap run: the run options as given, no task
    options or gates (the taps are tensors, not the task's outputs)."""
    a = copy.copy(args)
    for gate in GATES:
        setattr(a, gate, [])
    a.model, a.json, a.reference = str(model), None, None
    a.boxes, a.labels, a.keep_outputs, a.metric_plugin = [], None, False, None
    a.float_model_sha256 = float_sha
    return a


def host_metrics(device_tap: Path, float_tap: Path, ref: Any, shapes: dict) -> dict[str, dict[str, float]]:
    """The host's simulation: both tap models on this host's CPU (ONNX Runtime
    CPU EP), per output the mean SQNR, the minimum cosine and the worst max
    relative error over the samples, one sample in memory at a time.

    The device model runs with graph optimizations off: each QDQ pair stays
    DequantizeLinear -> float op -> QuantizeLinear, the QDQ semantics in float
    arithmetic. With them on, ORT fuses the pairs into integer kernels
    (QLinearConv, MatMulInteger) whose arithmetic is this CPU's own: uint8 x
    int8 saturates int16 on AVX2 without VNNI (ORT's quantization docs, "When
    and why do I need to try U8U8?"), which is a device's departure, not the
    simulation's."""
    import numpy as np
    import onnxruntime as ort

    from agent.validate.metrics import tensor_metrics

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    dev = ort.InferenceSession(str(device_tap), so, providers=["CPUExecutionProvider"])
    flt = ort.InferenceSession(str(float_tap), providers=["CPUExecutionProvider"])
    names = [o.name for o in flt.get_outputs()]
    acc: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    for i in range(ref.samples):
        f = ref.feeds(i, shapes)  # the agent's fitting of a sample to the model (agent/validate/reference.py)
        ys = dict(zip(names, flt.run(names, f), strict=True))
        xs = dict(zip(names, dev.run(names, f), strict=True))
        for k in names:
            for m, v in tensor_metrics(xs[k], ys[k]).items():
                acc[k].setdefault(m, []).append(v)
    return {
        k: {"sqnr_db": float(np.mean(v["sqnr_db"])), "cosine": float(np.min(v["cosine"])),
            "max_rel_err": float(np.max(v["max_rel_err"]))}
        for k, v in acc.items()
    }  # fmt: skip
