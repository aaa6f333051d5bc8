"""``quantize --explain``: the known causes of INT8 cliffs read from a QDQ
graph before any run, each with the numbers behind it and the nodes to keep
in float (the ``--target`` search tries them first).

- ``join``: a Concat/Add/Sum whose inputs' calibrated ranges differ >= 100x
  under one output scale. The smaller input keeps ``range / scale`` levels;
  the YOLOv8 head concatenates pixel boxes (0..~1000) with 0-1 scores under
  one scale of ~4.1, so a score keeps 0.24 of a level and becomes 0. A Mul is
  not read as a join: its output scale spans the product, so neither input's
  step is lost to the other's range (a Mul's coarse output is ``few_levels``).
- ``spread_weights``: per-tensor weights whose per-output-channel ranges differ
  >= 100x (depthwise convs): the narrowest channel keeps few levels. Remedy:
  ``--per-channel``, or the node in float.
- ``few_levels`` (needs calibration samples): an activation whose calibrated
  range leaves fewer than ``levels`` steps to its typical values (1st..99th
  percentile on the samples): the too-wide calibration. Sigmoid/Softmax
  outputs are left to ``edge``: their 0..1 range cannot be too wide.
- ``edge``: a quantized model output (what the user reads, one scale over
  all its channels), and a Sigmoid/Softmax output whose step on the way to
  the model output is coarser than the decision it feeds (``decision``, a
  score threshold such as ``--box-score``).

Severity is the levels left to what is at risk: fewer is worse; hazards are
listed worst first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput, one_line
from controller.quantize import tensors
from controller.quantize.qdq_graph import QdqGraph, read

JOIN_OPS = ("Concat", "Add", "Sum")
WEIGHTED = {"Conv": 0, "ConvTranspose": 1, "Gemm": 0, "MatMul": -1}  # op -> output-channel axis of W
PROB_OPS = ("Sigmoid", "Softmax")
# ops that move values without changing them: a probability keeps its meaning through them
PASS_OPS = ("Concat", "Reshape", "Transpose", "Slice", "Split", "Squeeze", "Unsqueeze", "Flatten", "Gather",
            "Identity")  # fmt: skip
RATIO = 100.0
LEVELS = 16
DECISION = 0.01  # a score threshold when none is given: 1% of a probability's range
SAMPLES = 2  # calibration samples read for typical values: one inference each, all tensors


@dataclass
class Hazard:
    kind: str
    node: str
    op: str
    levels: float  # levels left to what is at risk
    keep_float: list[str]
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)


def _span(lo: float, hi: float) -> float:
    return max(hi - lo, 0.0)


def joins(q: QdqGraph, ratio: float = RATIO) -> list[Hazard]:
    out = []
    for n in q.nodes:
        if n.op_type not in JOIN_OPS:
            continue
        outs = q.float_outputs(n)
        if not outs or outs[0] not in q.act:
            continue  # the join's output is float: each input keeps its own scale
        spans = []
        for name in q.float_inputs(n):
            if name in q.act:
                spans.append((name, _span(*q.act[name].range())))
            elif (c := q.constant(name)) is not None and c.size:
                spans.append((name, _span(float(c.min()), float(c.max()))))
        spans = [s for s in spans if s[1] > 0]
        if len(spans) < 2:
            continue
        (small, lo), (big, hi) = min(spans, key=lambda s: s[1]), max(spans, key=lambda s: s[1])
        if hi / lo < ratio:
            continue
        step = q.act[outs[0]].step
        left = lo / step
        out.append(Hazard(
            "join", n.name, n.op_type, left, [n.name],
            f"{n.op_type} joins ranges {hi:.4g} ({big}) and {lo:.4g} ({small}), {hi / lo:.0f}x, under one "
            f"scale {step:.4g}: the smaller keeps {left:.2g} level(s)",
            {"ratio": hi / lo, "large_range": hi, "small_range": lo, "scale": step, "large": big,
             "small": small},
        ))  # fmt: skip
    return out


def spread_weights(q: QdqGraph, ratio: float = RATIO) -> list[Hazard]:
    out = []
    for n in q.nodes:
        if n.op_type not in WEIGHTED or len(n.input) < 2 or n.input[1] not in q.weights:
            continue
        w, p = q.weights[n.input[1]]
        if not p.per_tensor or w.ndim < 2:
            continue
        axis = WEIGHTED[n.op_type] % w.ndim
        if n.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in n.attribute):
            axis = 1
        z = float(p.zero_point.reshape(-1)[0]) if p.zero_point.size else 0.0
        # each output channel's largest weight in steps; a channel rounded to all zeros had less
        # than half a step (its float range is gone from the QDQ graph: at most 0.5 step)
        amax = np.abs(np.moveaxis(w.astype(np.float64) - z, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
        low, high = float(amax.min()), float(amax.max())
        if high == 0 or high / max(low, 0.5) < ratio:
            continue
        zeros = int((amax == 0).sum())
        spread = high / max(low, 0.5)
        out.append(Hazard(
            "spread_weights", n.name, n.op_type, low, [n.name],
            f"per-tensor weights: output channels span {max(low, 0.5) * p.step:.3g}..{high * p.step:.3g} "
            f"({'>= ' if zeros else ''}{spread:.0f}x) under one scale {p.step:.3g}: the narrowest keeps "
            f"{low:.0f} level(s)" + (f", {zeros} channel(s) round to all zeros" if zeros else "")
            + "; quantize per channel, or keep it in float",
            {"ratio": spread, "min_channel_levels": low, "max_channel_levels": high, "scale": p.step,
             "channels": int(w.shape[axis]), "zero_channels": zeros},
        ))  # fmt: skip
    return out


def edges(q: QdqGraph, decision: float = DECISION) -> list[Hazard]:
    out = []
    for name in q.outputs:
        if name not in q.act or name not in q.producer:
            continue
        p, n = q.act[name], q.producer[name]
        lo, hi = p.range()
        out.append(Hazard(
            "edge", n.name, n.op_type, decision / p.step, [n.name],
            f"model output {name} is quantized: one scale {p.step:.4g} over {lo:.4g}..{hi:.4g}, a step "
            f"{p.step / decision:.3g}x the decision {decision:g}",
            {"tensor": name, "scale": p.step, "min": lo, "max": hi, "decision": decision},
        ))  # fmt: skip
    for n in q.nodes:
        if n.op_type not in PROB_OPS:
            continue
        # the coarsest step the probability takes on its way to an output, and where it takes it
        worst, at, frontier, seen = 0.0, None, [(n, o) for o in q.float_outputs(n)], set()
        while frontier:
            node, t = frontier.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in q.act and q.act[t].step > worst:
                worst, at = q.act[t].step, node
            for c in q.consumers.get(t, []):
                if c.op_type in PASS_OPS:
                    frontier += [(c, o) for o in q.float_outputs(c)]
        if at is None or worst <= decision:
            continue
        keep = [at.name] if at is not n else [n.name]
        out.append(Hazard(
            "edge", n.name, n.op_type, decision / worst, keep,
            f"{n.op_type} output reaches "
            f"{'the output through ' + at.name if at is not n else 'its consumers'} with a step "
            f"{worst:.4g}, coarser than the decision {decision:g} it feeds",
            {"scale": worst, "decision": decision, "coarsened_at": at.name},
        ))  # fmt: skip
    return out


def few_levels(q: QdqGraph, path: Path, samples: list[dict[str, np.ndarray]], levels: float = LEVELS,
               ) -> list[Hazard]:  # fmt: skip
    """Typical values (1st..99th percentile) of every quantized activation, read by
    running the QDQ model with them as extra outputs, one sample at a time."""
    # a probability's range is fixed at 0..1, never too wide: its step is the edge hazard's
    names = [t for t in q.act if t in q.inputs or (t in q.producer and q.producer[t].op_type not in PROB_OPS)]
    lo: dict[str, list[float]] = {}
    hi: dict[str, list[float]] = {}
    for values in tensors.read(path, names, samples):
        for t, v in values.items():
            v = np.asarray(v, dtype=np.float32).reshape(-1)
            step = max(1, v.size // 200_000)  # a strided subsample bounds the percentile's cost
            a, b = np.percentile(v[::step], [1, 99])
            lo.setdefault(t, []).append(float(a))
            hi.setdefault(t, []).append(float(b))
    out = []
    for t in names:
        if t not in lo:
            continue
        p = q.act[t]
        typical = _span(min(lo[t]), max(hi[t]))
        left = typical / p.step
        if left >= levels or typical == 0:
            continue
        n = q.producer.get(t)
        keep = ([n.name] if n is not None else []) + [c.name for c in q.consumers.get(t, [])]
        rlo, rhi = p.range()
        out.append(Hazard(
            "few_levels", n.name if n is not None else t, n.op_type if n is not None else "input", left, keep,
            f"{t}: calibrated range {rlo:.4g}..{rhi:.4g} (step {p.step:.4g}) leaves {left:.3g} level(s) "
            f"to its typical values {min(lo[t]):.4g}..{max(hi[t]):.4g}",
            {"tensor": t, "scale": p.step, "min": rlo, "max": rhi, "p01": min(lo[t]), "p99": max(hi[t])},
        ))  # fmt: skip
    return out


def explain(
    path: Path,
    samples: list[dict[str, np.ndarray]] | None = None,
    decision: float | None = None,
    ratio: float = RATIO,
    levels: float = LEVELS,
) -> dict[str, Any]:
    """The report section: ``{hazards[], quantized_tensors, thresholds{}, samples}``,
    hazards worst first. ``samples``: calibration feeds for ``few_levels``."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise BadInput(f"{Path(path).name}: not a loadable ONNX model: {one_line(exc, 200)}") from None
    decision = decision or DECISION
    q = read(model)
    if not q.act and not q.weights:
        raise BadInput(f"{Path(path).name}: no QuantizeLinear/DequantizeLinear pair: not a QDQ model")
    found = joins(q, ratio) + spread_weights(q, ratio) + edges(q, decision)
    if samples:
        found += few_levels(q, Path(path), samples, levels)
    found.sort(key=lambda h: h.levels)
    return {
        "hazards": [asdict(h) for h in found],
        "quantized_tensors": len(q.act),
        "quantized_weights": len(q.weights),
        "samples": len(samples or []),
        "thresholds": {"ratio": ratio, "levels": levels, "decision": decision},
    }


def keep_sets(section: dict[str, Any]) -> list[list[str]]:
    """Each hazard's nodes to keep in float, worst first, each set once."""
    out: list[list[str]] = []
    for h in section.get("hazards", []):
        s = sorted(h["keep_float"])
        if s and s not in out:
            out.append(s)
    return out
