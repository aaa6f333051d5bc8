"""``quantize --target METRIC>=X``: the fewest nodes kept in float that meet the
target on the validation set. Any node can be kept in float, not only the
arithmetic ones: the YOLOv8 cliff lives in the head's Concat.

One calibration serves every candidate (ORT's calibration cache); each
candidate is one re-quantization plus one pass over the validation samples
(an *evaluation*). Phases, each run only when the one before it fails:

1. **hazards** (``hazards.py``, read from the fully quantized model): each
   hazard's nodes, worst first. All of them together are tried once; when that
   meets the target, the shortest worst-first prefix that meets it, then each
   set of that prefix dropped in turn when the rest still meets it.
   At most ``2 h`` evaluations for h hazard sets.
2. **output-side region**: the nodes whose outputs reach a model output with
   no Conv between (the decode of a detector head), grown backwards one
   graph level at a time; the whole region is tried, then the fewest levels
   found by bisection. ``1 + log2(D)`` evaluations for a region D levels deep.
   One evaluation when the whole region misses.
3. **fused activations**: every node but the Convs kept in float, so that
   only Convs (their inputs and weights) are INT8: NNCF and TensorRT fuse
   Conv+SiLU (Sigmoid, Mul) and the joins, and quantize at Conv inputs only.
   One evaluation.
4. **head Convs**: the Convs that feed the output-side region (a detector's
   last box, class and DFL Convs: the tensors the decode reads at full
   precision) kept in float, all of them, then the fewest in graph order by
   bisection. ``1 + log2(C)`` evaluations for C such Convs. When it meets the
   target, phase 3's nodes are dropped again if the rest still meets it (one
   evaluation: fewer float nodes).
5. **per-tensor error**: the float and the quantized model run once on one
   sample with every tensor read; nodes ranked by the SQNR they lose
   (their output's against their worst input's); the top 1, 2, 4, ... kept in
   float, then bisection to the fewest. ``2 log2(N)`` evaluations for N nodes.

The float nodes of a phase that fails stay in float in the next (they are
known causes). The report states the evaluations made.

On YOLOv8n DocLayNet (10 rendered pages, S8S8 per-channel): all INT8 AP50
0, Convs only INT8 0.59, Convs only with the 7 head Convs float 0.76 (float
0.755); phases 1-2 miss, 3 misses, 4 meets.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from controller.quantize import hazards, tensors
from controller.quantize.calibration import first_feed
from controller.quantize.onnx_static import QuantOptions, quantize
from controller.quantize.qdq_graph import read
from controller.quantize.target import Scorer as TensorScorer
from controller.quantize.target import Target
from controller.quantize.task_score import TASK_METRICS, TaskOptions, TaskScorer

BARRIER = ("Conv", "ConvTranspose")  # the output-side region stops at these


class Scorer(Protocol):
    feeds: list[dict[str, np.ndarray]]

    def score(self, model: Path) -> float | None: ...


def output_region(model: Any, convs: list[str] | None = None) -> list[list[str]]:
    """Levels of the output-side region: level k holds the nodes k steps back
    from a model output, never through a Conv (nor past one). ``convs``, when
    given, receives the Convs the region stops at, in graph order."""
    g = read(model)
    levels: list[list[str]] = []
    seen: set[str] = set()
    stops: set[str] = set()
    frontier = [g.producer[o] for o in g.outputs if o in g.producer]
    while frontier:
        level = []
        for n in frontier:
            if n.op_type in BARRIER:
                stops.add(n.name)
            elif n.name not in seen:
                seen.add(n.name)
                level.append(n)
        if not level:
            break
        levels.append([n.name for n in level])
        frontier = [g.producer[i] for n in level for i in g.float_inputs(n) if i in g.producer]
    if convs is not None:
        convs.extend(n.name for n in g.nodes if n.name in stops)
    return levels


def error_ranking(float_model: Path, qdq: Path, feed: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Nodes by the SQNR (dB) their output loses against their worst input, on one sample."""
    import onnx

    g = read(onnx.load(str(qdq)))
    names = sorted({t for n in g.nodes for t in g.float_outputs(n) + g.float_inputs(n)})
    ref = next(tensors.read(float_model, names, [feed]))
    got = next(tensors.read(qdq, names, [feed]))
    sq = {t: tensors.sqnr_db(ref[t], got[t]) for t in names if t in ref and t in got
          and np.shape(ref[t]) == np.shape(got[t])}  # fmt: skip
    rows = []
    for n in g.nodes:
        outs = [sq[t] for t in g.float_outputs(n) if t in sq]
        ins = [sq[t] for t in g.float_inputs(n) if t in sq and t in g.producer or t in g.inputs and t in sq]
        if not outs or not any(t in g.act for t in g.float_outputs(n) + g.float_inputs(n)):
            continue  # nothing of it is quantized
        before = min(ins) if ins else float("inf")
        after = min(outs)
        loss = (before - after) if np.isfinite(before) else -after
        rows.append({"node": n.name, "op": n.op_type, "sqnr_db": round(after, 2), "loss_db": round(loss, 2)})
    rows.sort(key=lambda r: -r["loss_db"])
    return rows


class _Search:
    def __init__(self, model: Path, cal: dict[str, np.ndarray], work: Path, opts: QuantOptions,
                 target: Target, scorer: Scorer, pre: Path, say: Callable[[str], None]) -> None:  # fmt: skip
        self.model, self.cal, self.work, self.opts = model, cal, work, opts
        self.target, self.scorer, self.pre, self.say = target, scorer, pre, say
        self.cache = work / "calibration.json"
        self.steps: list[dict[str, Any]] = []
        self.memo: dict[frozenset[str], dict[str, Any]] = {}
        self.best: dict[str, Any] | None = None  # the met step with the fewest float nodes

    def eval(self, nodes: set[str] | list[str], phase: str) -> bool:
        key = frozenset(nodes)
        if key in self.memo:
            return self.memo[key]["met"]
        path = self.work / f"c{len(self.steps)}.onnx"
        o = replace(self.opts, exclude=list(self.opts.exclude) + sorted(key))
        t0 = time.perf_counter()
        quantize(self.model, self.cal, path, o, lambda s: None, self.pre, self.cache, candidate=True)
        v = self.scorer.score(path)
        met = self.target.met(v)
        step = {"phase": phase, "float_nodes": sorted(key), "value": v, "met": met,
                "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
        self.steps.append(step)
        self.memo[key] = step
        meets = " (meets)" if met else ""
        self.say(f"[{phase}] {len(key)} node(s) in float: {self.target.metric} {_fmt(v)}{meets}")
        path.unlink()  # the answer is quantized again in full at the end
        if met and (self.best is None or len(key) < len(self.best["float_nodes"])):
            self.best = step
        return met

    def hazards(self, sets: list[list[str]], base: set[str]) -> tuple[bool, set[str]]:
        union = base.union(*map(set, sets))
        if not self.eval(union, "hazards"):
            return False, union
        k = next((k for k in range(1, len(sets)) if self.eval(base.union(*map(set, sets[:k])), "hazards")),
                 len(sets))  # fmt: skip
        chosen = [set(s) for s in sets[:k]]
        for s in list(chosen[:-1]):  # the last one was needed for the prefix to meet it
            rest = [c for c in chosen if c is not s]
            if self.eval(base.union(*rest), "hazards"):
                chosen = rest
        return True, base.union(*chosen)

    def prefix(self, order: list[list[str]], base: set[str], phase: str, whole_first: bool = False) -> bool:
        """The fewest leading groups of ``order`` (on top of ``base``) that meet the target:
        1, 2, 4, ... then bisection (assumes more in float scores no worse). ``whole_first``:
        all of ``order`` is tried first, and nothing more when that misses (one evaluation)."""

        def with_k(k: int) -> set[str]:
            return base.union(*map(set, order[:k]))

        if whole_first and not self.eval(with_k(len(order)), phase):
            return False
        lo, hi, k = 0, None, 1
        while k <= len(order):
            if self.eval(with_k(k), phase):
                hi = k
                break
            lo, k = k, (2 * k if 2 * k <= len(order) or k == len(order) else len(order))
            if lo == len(order):
                break
        if hi is None:
            return False
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.eval(with_k(mid), phase):
                hi = mid
            else:
                lo = mid
        return True


def search(
    model: Path,
    cal: dict[str, np.ndarray],
    out: Path,
    opts: QuantOptions,
    target: Target,
    scorer: Scorer,
    say: Callable[[str], None] = print,
    decision: float | None = None,
) -> dict[str, Any]:
    """Search; returns the quantize report of the model written (none is written
    when the target is out of reach: ``met`` False) with the search's fields."""
    import onnx

    from controller.quantize.prepare import prepare

    t0 = time.perf_counter()
    model, out = Path(model).resolve(), Path(out).resolve()
    decision = decision or hazards.DECISION
    pre = prepare(model, opts.per_channel, say)
    work = out.with_name(out.stem + ".search")
    work.mkdir(exist_ok=True)
    ranking: list[dict[str, Any]] = []
    section: dict[str, Any] = {}
    try:
        s = _Search(model, cal, work, opts, target, scorer, pre, say)
        all_int8 = work / "all.onnx"
        rep = quantize(model, cal, all_int8, opts, lambda x: None, pre, s.cache, candidate=True)
        v = scorer.score(all_int8)
        s.steps.append({"phase": "all INT8", "float_nodes": [], "value": v, "met": target.met(v),
                        "seconds": rep["seconds"]})  # fmt: skip
        s.memo[frozenset()] = s.steps[0]
        say(f"all INT8: {target.metric} {_fmt(v)} ({'meets' if target.met(v) else 'misses'} {target})")
        base: set[str] = set()
        met = target.met(v)
        if met:
            s.best = s.steps[0]
        else:
            section = hazards.explain(all_int8, first_feed(model, cal), decision)
            sets = hazards.keep_sets(section)
            say(f"{len(section['hazards'])} hazard(s): {len(sets)} set(s) of nodes to keep in float")
            if sets:
                met, base = s.hazards(sets, base)
        pre_model = onnx.load(str(pre))
        head_convs: list[str] = []
        levels = [lv for lv in output_region(pre_model, head_convs) if not set(lv) <= base]
        if not met and levels:
            say(f"output-side region: {sum(map(len, levels))} node(s) over {len(levels)} level(s)")
            met = s.prefix(levels, base, "output region", whole_first=True)
            if not met:
                base = base.union(*map(set, levels))
        fused = {n.name for n in read(pre_model).nodes if n.op_type not in BARRIER} - base
        if not met and fused:
            say(f"fused activations: {len(fused)} node(s) but the Convs in float")
            met = s.eval(base | fused, "fused activations")
            if not met:
                base = base | fused
        if not met and head_convs:
            say(f"head Convs: the {len(head_convs)} Conv(s) feeding the output-side region")
            met = s.prefix([[c] for c in head_convs], base, "head Convs", whole_first=True)
            if met and fused <= base:  # the activations back in INT8 when the rest still meets it
                kept = set(s.best["float_nodes"]) if s.best else base
                s.eval(kept - fused, "head Convs")
            if not met:
                base = base.union(head_convs)
        if not met:
            ranking = error_ranking(model, all_int8, scorer.feeds[0])
            # never every node: a model with nothing quantized is no answer
            order = [[r["node"]] for r in ranking if r["node"] not in base][:-1]
            say(f"per-tensor error: {len(order)} node(s) ranked on one sample")
            s.prefix(order, base, "per-tensor error")
        best = s.best
        if best is not None:  # the answer written again in full: its calibration profile, the run check
            o = replace(opts, exclude=list(opts.exclude) + best["float_nodes"])
            rep = quantize(model, cal, out, o, lambda x: None, pre, s.cache)
        else:
            rep = {**rep, "output": None}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if best is not None and rep.get("nodes_int8"):
        rep["hazards"] = hazards.explain(out, None, decision)
    evals = len(s.steps)
    return {
        **rep,
        "target": str(target),
        "met": best is not None,
        "value": best["value"] if best else None,
        "float_value": getattr(scorer, "float_value", None),
        "validation_samples": len(scorer.feeds),
        "float_nodes": best["float_nodes"] if best else [],
        "steps": s.steps,
        "ranking": ranking,
        "explain_all_int8": section,
        "evaluations": evals,
        "search_seconds": round(time.perf_counter() - t0, 2),
        "cost": f"{evals} evaluation(s) from one calibration: each one re-quantization and "
        f"{len(scorer.feeds)} validation inference(s)"
        + ("; per-tensor error read on one sample" if ranking else ""),
    }


def target_search(
    model: Path,
    cal: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    out: Path,
    opts: QuantOptions,
    target: Target,
    budget: int = 16,
    task: TaskOptions | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The search with its scorer: a task metric (``task_score.py``) or a tensor metric
    (``target.Scorer``), on at most ``budget`` validation samples."""
    task = task or TaskOptions()
    if target.metric in TASK_METRICS and not opts.types_chosen:
        # S8S8, ORT's documented first choice for QDQ ("Data type selection"): U8S8 runs on
        # VPMADDUBSW on x86-64 AVX2 without VNNI, whose int16 sums saturate ("When and why do I
        # need to try U8U8?"). YOLOv8n's Convs alone: AP50 0.31 as U8S8, 0.59 as S8S8 (presets.py).
        # Only the search: the default stays U8S8, whose non-negative ranges keep a bit (PP-OCR).
        say("activations int8 symmetric (S8S8) for the search: U8S8 saturates on non-VNNI x86")
        opts = replace(opts, activation_type="int8", symmetric_activations=True)
    if target.metric in TASK_METRICS:
        scorer: Scorer = TaskScorer(model, val, target.metric, budget, task)
    else:
        scorer = TensorScorer(model, val, target, budget)
    return search(model, cal, out, opts, target, scorer, say, task.box_score if task.boxes else None)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"
