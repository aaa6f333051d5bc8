"""``--validation VAL.npz --target METRIC>=X``: rank the quantizable nodes by
the damage their quantization does, then keep the most sensitive in float,
greedily, until the target holds on the validation set (never the
calibration set).

Ranking, and its cost: one quantization per candidate node with only that
node quantized (everything else float), each scored on at most
``budget`` validation samples on ONNX Runtime's CPU EP: N + 1 quantizer runs
and N x budget inferences for N candidates. Candidates are the nodes that
carry arithmetic (Conv, ConvTranspose, MatMul, Gemm); the rest follow their
producers. The greedy phase re-quantizes with the top 1, 2, 4, ... nodes
excluded, then bisects to the fewest that meet the target.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.samples import check_samples
from agent.validate.metrics import OutputStats, sample_metrics
from controller.quantize.onnx_static import QuantOptions, graph_inputs, quantize

ARITHMETIC = ("Conv", "ConvTranspose", "MatMul", "Gemm")
HIGHER_IS_BETTER = {"cosine": True, "sqnr_db": True, "top1_agreement": True, "top5_agreement": True,
                    "mask_iou": True, "nmse": False}  # fmt: skip
_TARGET = re.compile(r"^\s*([a-z0-9_]+)(?:@([0-9.]+))?\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


@dataclass
class Target:
    metric: str
    op: str
    value: float
    mask_threshold: float = 0.5

    @classmethod
    def parse(cls, text: str) -> Target:
        m = _TARGET.match(text)
        if m is None or m.group(1) not in HIGHER_IS_BETTER:
            raise BadInput(
                f"bad --target {text!r}: expected METRIC>=X with METRIC one of {', '.join(HIGHER_IS_BETTER)} "
                "(mask_iou@T for a threshold), e.g. 'cosine>=0.99'"
            )
        metric, op = m.group(1), m.group(3)
        want = ">=" if HIGHER_IS_BETTER[metric] else "<="
        if op != want:  # the other direction would ask for a worse model: refused, not guessed
            better = "higher" if want == ">=" else "lower"
            raise BadInput(f"bad --target {text!r}: {metric} is better {better}; write {metric}{want}X")
        return cls(metric, op, float(m.group(4)), float(m.group(2) or 0.5))

    def met(self, v: float | None) -> bool:
        return v is not None and (v >= self.value if self.op == ">=" else v <= self.value)

    def __str__(self) -> str:
        at = f"@{self.mask_threshold:g}" if self.metric == "mask_iou" else ""
        return f"{self.metric}{at}{self.op}{self.value:.10g}"


class Scorer:
    """The float model's outputs on the validation samples, and a score of a
    candidate model's outputs against them: the worst output's summary figure."""

    def __init__(self, float_model: Path, val: dict[str, np.ndarray], target: Target, budget: int) -> None:
        import onnx
        import onnxruntime as ort

        self.target = target
        inputs = graph_inputs(onnx.load(str(float_model), load_external_data=False))
        n, shapes = check_samples(val, inputs, "the validation set", extra_ok=True)
        self.feeds = [
            {k: np.ascontiguousarray(val[k][i].reshape(shapes[k])) for k in inputs}
            for i in range(min(n, budget))
        ]
        sess = ort.InferenceSession(str(float_model), providers=["CPUExecutionProvider"])
        self.names = [o.name for o in sess.get_outputs()]
        self.ref = [sess.run(None, f) for f in self.feeds]

    def score(self, model: Path) -> float | None:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        stats = {n: OutputStats(n) for n in self.names}
        for f, ref in zip(self.feeds, self.ref, strict=True):
            for name, y, r in zip(self.names, sess.run(None, f), ref, strict=True):
                stats[name].add(sample_metrics(np.asarray(y).reshape(r.shape), r, self.target.mask_threshold))
        vals = [s.summary().get(self.target.metric) for s in stats.values()]
        vals = [v for v in vals if v is not None]
        if not vals:
            raise BadInput(f"--target {self.target}: no output of this model has {self.target.metric}")
        return min(vals) if HIGHER_IS_BETTER[self.target.metric] else max(vals)


def search(
    model: Path,
    cal: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    out: Path,
    opts: QuantOptions,
    target: Target,
    budget: int = 16,
    say: Callable[[str], None] = print,
    prepared: Path | None = None,
) -> dict[str, Any]:
    """Rank, then the fewest float nodes that meet ``target``. Returns the
    report; ``report["met"]`` is False when even all-but-one float cannot."""
    import onnx

    from controller.quantize.prepare import prepare

    model, out = Path(model).resolve(), Path(out).resolve()
    pre = prepared or prepare(model, opts.per_channel, say)
    scorer = Scorer(model, val, target, budget)
    work = out.with_name(out.stem + ".search")
    work.mkdir(exist_ok=True)
    m = onnx.load(str(pre))
    candidates = [n.name for n in m.graph.node if n.op_type in ARITHMETIC]
    cache = work / "calibration.json"
    full = quantize(model, cal, work / "all.onnx", opts, say=lambda s: None, prepared=pre, cache=cache)
    base = scorer.score(work / "all.onnx")
    steps = [{"float_nodes": [], "value": base, "met": target.met(base)}]
    say(f"all quantized: {target.metric} {base:.4g} ({'meets' if target.met(base) else 'misses'} {target})")
    ranking: list[dict[str, Any]] = []
    if not target.met(base):
        say(f"ranking {len(candidates)} nodes, one quantized at a time, on {len(scorer.feeds)} samples")
        for name in candidates:
            others = [c for c in candidates if c != name]
            one = replace(opts, exclude=list(opts.exclude) + others)
            quantize(model, cal, work / "one.onnx", one, say=lambda s: None, prepared=pre, cache=cache)
            v = scorer.score(work / "one.onnx")
            ranking.append({"node": name, "value": v})
        # the most damaging first: lowest score for higher-is-better metrics
        ranking.sort(
            key=lambda r: (r["value"] is None, r["value"] if HIGHER_IS_BETTER[target.metric] else -r["value"])
        )
    chosen: list[str] = []
    final = full
    if ranking:
        order = [r["node"] for r in ranking]

        def trial(k: int) -> tuple[float | None, dict]:
            o = replace(opts, exclude=list(opts.exclude) + order[:k])
            rep = quantize(model, cal, work / f"k{k}.onnx", o, say=lambda s: None, prepared=pre, cache=cache)
            v = scorer.score(work / f"k{k}.onnx")
            steps.append({"float_nodes": order[:k], "value": v, "met": target.met(v)})
            say(f"{k} node(s) in float: {target.metric} {v:.4g}")
            return v, rep

        lo, hi, k = 0, None, 1
        results: dict[int, dict] = {}
        while k <= len(order) - 1:  # all-float-but-one is the last try
            v, rep = trial(k)
            results[k] = rep
            if target.met(v):
                hi = k
                break
            lo = k
            k = min(2 * k, len(order) - 1) if k < len(order) - 1 else len(order)
        if hi is not None:
            while hi - lo > 1:  # the fewest float nodes that meet it
                mid = (lo + hi) // 2
                v, rep = trial(mid)
                results[mid] = rep
                if target.met(v):
                    hi = mid
                else:
                    lo = mid
            chosen = order[:hi]
            final = results[hi]
            (work / f"k{hi}.onnx").replace(out)
            final["output"] = str(out)
        else:  # nothing meets it: no model is written
            final = {**full, "output": None}
        met = hi is not None
    else:
        met = target.met(base)
        (work / "all.onnx").replace(out)
        final["output"] = str(out)
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    value = next((st["value"] for st in steps if st["float_nodes"] == chosen), None) if met else None
    return {
        **final,
        "target": str(target),
        "met": met,
        "validation_samples": len(scorer.feeds),
        "ranking": ranking,
        "float_nodes": chosen,
        "steps": steps,
        "value": value,
        "cost": f"{len(ranking) + len(steps)} quantizations (one calibration), "
        f"{len(ranking) + len(steps)} x {len(scorer.feeds)} validation inferences",
    }
