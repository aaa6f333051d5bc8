"""``pipeline{}`` of the result, from each stream's frame rows (arrival,
start, end, burst) and stage times (ns per stage per frame run).

A miss is attributed to the stage that overran: the stage whose time exceeded
its own median by the most. A late frame whose own service fits the deadline
was late because it waited behind the last frame that overran; a dropped
frame arrived while an earlier one ran long: both go to that frame's
overrunning stage. Percentiles are nearest-rank (agent/stats.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.spec import RunSpec
from agent.stats import nearest_rank


def _pct(ns: np.ndarray) -> dict[str, float | None]:
    s = np.sort(np.asarray(ns, np.float64)) / 1e6
    if not s.size:
        return {"p50": None, "p99": None, "mean": None, "max": None}
    return {
        "p50": nearest_rank(s, 50.0),
        "p99": nearest_rank(s, 99.0),
        "mean": float(s.mean()),
        "max": float(s[-1]),
    }


def attribute(
    frames: np.ndarray, times: np.ndarray, deadline_ns: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(late per stage, dropped per stage): each miss counted once, at the
    stage that overran."""
    s = times.shape[1] if times.ndim == 2 else 0
    late = np.zeros(s, np.int64)
    dropped = np.zeros(s, np.int64)
    if not s or not len(times):
        return late, dropped
    over = times - np.median(times, axis=0)
    culprit = over.argmax(axis=1)  # per frame run
    overran = over.max(axis=1) > 0
    done_i = -1  # index of the last completed frame
    blame = int(culprit[0])  # the stage of the last frame that overran: queueing behind it
    for a, start, end, _b in frames:
        if start < 0:
            dropped[blame] += 1
            continue
        done_i += 1
        if done_i >= len(times):
            break
        own = int(culprit[done_i])
        if deadline_ns is not None and end - a > deadline_ns:
            waited = end - start <= deadline_ns  # its own work fit: it waited behind an overrun
            late[blame if waited else own] += 1
        if overran[done_i]:
            blame = own
    return late, dropped


TIMELINE_BINS = 300  # the stacked per-stage timeline: at most this many bins


def timeline(start_ns: np.ndarray, times: np.ndarray, origin_ns: int, span_ns: int, names: list[str]) -> dict:
    """Mean ms per stage in time bins of frame start (seconds from the measured
    phase's start, ``measure_start_ns``): the HTML report's stacked timeline."""
    if not len(times):
        return {"t_s": [], "resolution_s": None, "stages": {n: [] for n in names}}
    bin_ns = max(int(np.ceil(span_ns / TIMELINE_BINS)), 1)
    b = np.clip((start_ns - origin_ns) // bin_ns, 0, None).astype(np.int64)
    count = np.bincount(b)
    used = np.nonzero(count)[0]
    stages = {}
    for j, n in enumerate(names):
        sums = np.bincount(b, weights=times[:, j].astype(np.float64), minlength=len(count))
        stages[n] = [round(float(v), 4) for v in sums[used] / count[used] / 1e6]
    return {
        "t_s": [round(float(t), 4) for t in (used + 0.5) * bin_ns / 1e9],
        "resolution_s": bin_ns / 1e9,
        "stages": stages,
    }


def stream_doc(snap: dict[str, Any], m: dict[str, Any], frames: np.ndarray, spec: RunSpec) -> dict[str, Any]:
    times, items = snap["times"], snap["items"]
    deadline = spec.load.deadline_ns if spec.load is not None else None
    f = np.asarray(frames, np.int64).reshape(-1, 4)
    done = f[f[:, 1] >= 0]
    n = min(len(done), len(times))
    rows = bool(n) and bool(done[:n, 2].any())  # frame rows with times (every stream under a load)
    work = times[:n].sum(axis=1) if n else np.zeros(0, np.int64)
    service = (done[:n, 2] - done[:n, 1]) if rows else work
    overhead = np.maximum(service - work, 0) if rows else np.zeros(n, np.int64)
    frame_mean_ns = float(service.mean()) if len(service) else 0.0
    budget_ns = float(deadline) if deadline else frame_mean_ns
    late, dropped = attribute(f, times[:n], deadline)
    stages = []
    for j, st in enumerate(snap["stages"]):
        t = times[:n, j]
        p = _pct(t)
        stages.append(
            {
                "index": j + 1,
                "name": st["name"],
                "kind": st["kind"],
                "backend": st.get("backend"),
                "p50_ms": p["p50"],
                "p99_ms": p["p99"],
                "mean_ms": p["mean"],
                "max_ms": p["max"],
                "budget_share": float(t.mean()) / budget_ns if budget_ns and n else None,
                "items_per_frame": float(items[:n, j].mean()) if n else None,
                "items_max": int(items[:n, j].max()) if n else None,
                "late": int(late[j]),
                "dropped": int(dropped[j]),
                **(
                    {"model": st["model"], "runtime": st["runtime"], "init_ms": st["init_ms"]}
                    if "model" in st
                    else {}
                ),
            }
        )
    span_s = max(m["end_ns"] - m["start_ns"], 1) / 1e9
    model_mask = np.array(snap["model_stage"], bool)
    first_model = int(np.argmax(model_mask)) if model_mask.any() else len(model_mask)
    mean_t = times[:n].mean(axis=0) if n else np.zeros(len(model_mask))
    share = lambda sel: float(mean_t[sel].sum()) / frame_mean_ns if frame_mean_ns else None  # noqa: E731
    idx = np.arange(len(model_mask))
    return {
        "pipeline": snap["name"],
        "stream": snap["index"],
        "frames": int(len(f)),
        "completed": int(len(done)),
        "late": int(late.sum()),
        "dropped": int(dropped.sum()),
        "achieved_rate_hz": len(done) / span_s,
        "frame_budget_ms": budget_ns / 1e6 if budget_ns else None,
        "service_ms": _pct(service),
        "latency_ms": _pct(done[:, 2] - done[:, 0]) if rows else _pct(service),
        "overhead_ms": _pct(overhead),
        "overhead_share": float(overhead.mean()) / budget_ns if budget_ns and rows else None,
        "model_share": share(model_mask),
        "pre_share": share((idx < first_model) & ~model_mask),
        "post_share": share((idx > first_model) & ~model_mask),
        "stages": stages,
        "outputs": snap["outputs"],
        "timeline": timeline(
            done[:n, 1] if rows else m["start_ns"] + np.cumsum(work),
            times[:n],
            m["start_ns"],
            m["end_ns"] - m["start_ns"],
            [st["name"] for st in snap["stages"]],
        ),
    }


def pipeline_doc(
    spec: RunSpec,
    per_stream: list[tuple[dict[str, Any], dict[str, Any], np.ndarray]],
    alone: list[dict[str, Any]],
    contention: dict[str, Any] | None,
    placements: list[dict[str, Any]],
) -> dict[str, Any]:
    streams = [stream_doc(snap, m, fr, spec) for snap, m, fr in per_stream]
    first = streams[0]
    if contention is not None:
        alone_p50 = contention["service_ms"]["p50"]
        for s in streams:
            same = s["pipeline"] == first["pipeline"]
            p50 = s["service_ms"]["p50"]
            s["slowdown"] = p50 / alone_p50 if same and alone_p50 and p50 else None
    doc: dict[str, Any] = {
        "name": first["pipeline"],
        "pipelines": [p["name"] for p in spec.pipeline["pipelines"]],  # type: ignore[index]
        "streams_total": len(streams),
        "stages": first["stages"],
        "achieved_rate_hz": first["achieved_rate_hz"],
        "frame_budget_ms": first["frame_budget_ms"],
        "service_ms": first["service_ms"],
        "latency_ms": first["latency_ms"],
        "overhead_ms": first["overhead_ms"],
        "overhead_share": first["overhead_share"],
        "model_share": first["model_share"],
        "pre_share": first["pre_share"],
        "post_share": first["post_share"],
        "misses": {
            "late": first["late"],
            "dropped": first["dropped"],
            "by_stage": {
                st["name"]: st["late"] + st["dropped"] for st in first["stages"] if st["late"] + st["dropped"]
            },
        },
        "models": alone,
        "outputs": first["outputs"],
        "timeline": first["timeline"],
        "streams": [
            {k: v for k, v in s.items() if k not in ("stages", "outputs", "timeline")} for s in streams
        ],
        "contention": contention,
        "placements": [
            {
                k: p.get(k)
                for k in (
                    "stage",
                    "runtime",
                    "total_nodes",
                    "accelerated_nodes",
                    "fallback",
                    "cpu_time_share",
                )
            }
            for p in placements
        ],
    }
    doc["headline"] = headline(doc)
    return doc


def headline(doc: dict[str, Any]) -> str:
    """ "detector alone N FPS, application M FPS; post-processing X% of the frame"."""
    parts = []
    if doc["models"] and doc["models"][0].get("calls_per_s"):
        parts.append(f"{doc['models'][0]['stage']} alone {doc['models'][0]['calls_per_s']:.1f} FPS")
    parts.append(f"application {doc['achieved_rate_hz']:.1f} FPS")
    text = ", ".join(parts)
    if doc["post_share"] is not None:
        text += f"; post-processing {100 * doc['post_share']:.0f}% of the frame"
    if doc["pre_share"] is not None:
        text += f", pre-processing {100 * doc['pre_share']:.0f}%"
    return text
