"""Two results side by side, A (e.g. the original model) against B (the
optimised variant): size ratio, speedup with a bootstrap confidence interval,
p99, throughput, sustained-throughput (soak) and energy-per-inference (power)
changes, accuracy (validate runs, each output's metrics), the board, runtime
and accelerator of each, and placement changes: the counts (nodes,
accelerated nodes, partitions), the CPU time share and the fallback flag, ops
that changed device (e.g. back to CPU after a BSP update), and nodes present
in only one run (a new SDK or graph optimization that fused or split them).

Ratios are A/B: above 1, B is smaller (size) or faster (speedup). This
module computes; ``controller/report/compare_text.py`` renders (terminal,
Markdown)."""

from __future__ import annotations

from typing import Any

import numpy as np

from controller.report import bootstrap

CONVENTION = "ratios are A/B: >1 means B is smaller (size) or faster (speedup)"
# The bootstrap sees one run's iterations, not how much a run's median moves
# between runs on the same board (clock state, memory placement, neighbours);
# without this term two benches of one model are "significantly" different.
RUN_NOISE = 0.02

# placement counts and flag whose change is a placement change; cpu_time_share
# is shown beside them but varies run to run, so it alone is not a change
PLACEMENT_KEYS = ("total_nodes", "accelerated_nodes", "partitions", "fallback")


def _nodes(result: dict) -> dict[str, dict]:
    pl = result.get("placement") or {}
    return {n["name"]: n for n in pl.get("nodes") or [] if "name" in n}


def _node(n: dict) -> dict:
    return {"name": n["name"], "op_type": n.get("op_type"), "device": n.get("device", "?")}


def is_number(x: object) -> bool:
    """An int or a float, not bool: a figure both runs can be compared on."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _delta(x: object, y: object) -> dict:
    ok = is_number(x) and is_number(y)
    return {
        "a": x,
        "b": y,
        "delta": (y - x) if ok else None,
        "pct": ((y - x) / x * 100) if ok and x else None,
    }


def _placement(a: dict, b: dict) -> dict[str, Any]:
    pa, pb = a.get("placement") or {}, b.get("placement") or {}
    na, nb = _nodes(a), _nodes(b)
    moved = [
        {"name": n, "from": na[n].get("device", "?"), "to": nb[n].get("device", "?")}
        for n in nb
        if n in na and na[n].get("device", "?") != nb[n].get("device", "?")
    ]
    fa = {n["name"] for n in pa.get("fallback_nodes") or []}
    fb = {n["name"] for n in pb.get("fallback_nodes") or []}
    return {
        "placement": {k: _delta(pa.get(k), pb.get(k)) for k in (*PLACEMENT_KEYS, "cpu_time_share")}
        if pa or pb
        else {},
        "placement_changes": [k for k in PLACEMENT_KEYS if (pa or pb) and pa.get(k) != pb.get(k)],
        "moved": moved,
        "removed_nodes": [_node(n) for name, n in na.items() if name not in nb],
        "added_nodes": [_node(n) for name, n in nb.items() if name not in na],
        "new_fallback": sorted(fb - fa),
        "fixed_fallback": sorted(fa - fb),
    }


def _ratio(x: object, y: object) -> dict:
    """x/y, for A/B ratios (>1: B smaller or faster)."""
    return {"a": x, "b": y, "ratio": (x / y) if is_number(x) and is_number(y) and y else None}


def setup(result: dict) -> dict[str, Any]:
    """What ran: the model, the board, the runtime and the accelerator."""
    ag, rt, model = result.get("agent") or {}, result.get("runtime") or {}, result.get("model") or {}
    return {
        "model": model.get("name"),
        "model_sha256": model.get("sha256"),
        "hostname": ag.get("hostname"),
        "board": ag.get("board"),
        "profile": ag.get("profile"),
        "runtime": rt.get("name"),
        "runtime_version": rt.get("version"),
        "providers": list(rt.get("providers") or []),
        "delegate": rt.get("delegate"),
        "accelerator": (result.get("accelerator") or {}).get("name"),
        "labels": dict(result.get("labels") or {}),
    }


def _differences(sa: dict, sb: dict) -> tuple[list[str], list[str]]:
    """(warnings, notes): a different board, runtime or accelerator makes the
    comparison one of setups, not of models; different models are the point of
    an A/B of an original and its optimised variant, so that is a note."""
    warnings, notes = [], []

    def differ(keys: tuple[str, ...]) -> bool:
        return any(sa[k] != sb[k] for k in keys)

    def both(keys: tuple[str, ...], s: dict) -> str:
        return " / ".join(str(s[k]) if s[k] not in (None, "", []) else "-" for k in keys)

    for what, keys in (
        ("boards", ("hostname", "board", "profile")),
        ("runtimes", ("runtime", "runtime_version", "providers", "delegate")),
        ("accelerators", ("accelerator",)),
    ):
        if differ(keys):
            warnings.append(f"the {what} differ: A {both(keys, sa)}, B {both(keys, sb)}")
    if sa["model_sha256"] != sb["model_sha256"]:
        notes.append(
            f"the models differ (A {sa['model']} sha256 {str(sa['model_sha256'])[:12]}, "
            f"B {sb['model']} sha256 {str(sb['model_sha256'])[:12]})"
        )
    return warnings, notes


def _metrics(out: dict) -> dict[str, float]:
    """An output's numeric metrics, nested ones flattened (``cosine.min``)."""
    flat: dict[str, float] = {}
    for k, v in out.items():
        if is_number(v):
            flat[k] = v
        elif isinstance(v, dict):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items() if is_number(vv)})
    return flat


def accuracy(a: dict, b: dict) -> dict[str, Any] | None:
    """Each validation metric of each output, A against B; None unless a run validated."""
    va, vb = a.get("validation"), b.get("validation")
    if not isinstance(va, dict) and not isinstance(vb, dict):
        return None
    va, vb = va or {}, vb or {}
    oa = {o["name"]: o for o in va.get("outputs") or [] if isinstance(o, dict) and "name" in o}
    ob = {o["name"]: o for o in vb.get("outputs") or [] if isinstance(o, dict) and "name" in o}
    outputs = []
    for name in [*oa, *(n for n in ob if n not in oa)]:
        ma, mb = _metrics(oa.get(name, {})), _metrics(ob.get(name, {}))
        keys = [*ma, *(k for k in mb if k not in ma)]
        outputs.append({"name": name, "metrics": {k: _delta(ma.get(k), mb.get(k)) for k in keys}})
    return {
        "outputs": outputs,
        "passed": {"a": va.get("passed"), "b": vb.get("passed")},
        "failed_gates_b": [
            g for g in vb.get("gates") or [] if isinstance(g, dict) and not g.get("passed", True)
        ],
    }


def latencies(result: dict, iterations: np.ndarray | None = None) -> bootstrap.Latencies | None:
    """A run's latency distribution: its exact iterations when given, else the
    quantiles stored in ``series.latency_ms``; None for neither."""
    if iterations is not None:
        lat = bootstrap.from_iterations(iterations)
        if lat is not None:
            return lat
    return bootstrap.from_series((result.get("series") or {}).get("latency_ms"))


def speedup(
    a: dict,
    b: dict,
    lat_a: bootstrap.Latencies | None,
    lat_b: bootstrap.Latencies | None,
    run_noise: float = RUN_NOISE,
    resamples: int = bootstrap.RESAMPLES,
    seed: int = bootstrap.SEED,
) -> dict[str, Any]:
    """median latency A / median latency B with its bootstrap interval; with no
    per-iteration data for a run, the stored p50s' ratio and no interval."""
    out: dict[str, Any] = {
        "source_a": lat_a.source if lat_a else None,
        "source_b": lat_b.source if lat_b else None,
    }
    if lat_a is not None and lat_b is not None:
        ci = bootstrap.median_ratio_ci(lat_a, lat_b, resamples=resamples, seed=seed, run_noise=run_noise)
        out.update(ci, median_a_ms=lat_a.median(), median_b_ms=lat_b.median())
    else:
        pa, pb = (a.get("latency_ms") or {}).get("p50"), (b.get("latency_ms") or {}).get("p50")
        r = _ratio(pa, pb)["ratio"]
        out.update(ratio=r, low=None, high=None, significant=None, median_a_ms=pa, median_b_ms=pb)
    r = out["ratio"]
    # B's median latency against A's, in percent: +100 = twice as slow
    out["slowdown_pct"] = (1 / r - 1) * 100 if is_number(r) and r else None
    if out["significant"]:
        out["verdict"] = "B faster" if out["low"] > 1 else "B slower"
    elif out["significant"] is False:
        out["verdict"] = "no significant difference"
    else:
        out["verdict"] = "no interval: a run has no per-iteration latencies"
    return out


def compare(
    a: dict,
    b: dict,
    *,
    iterations_a: np.ndarray | None = None,
    iterations_b: np.ndarray | None = None,
    run_noise: float = RUN_NOISE,
    resamples: int = bootstrap.RESAMPLES,
    seed: int = bootstrap.SEED,
) -> dict:
    """A against B; ``iterations_*`` are the runs' ``iterations.npy`` rows when
    their files are at hand (exact latencies), else the stored quantiles serve."""
    la, lb = a.get("latency_ms") or {}, b.get("latency_ms") or {}
    sa, sb = setup(a), setup(b)
    warnings, notes = _differences(sa, sb)
    return {
        "a": a.get("run_id"),
        "b": b.get("run_id"),
        "convention": CONVENTION,
        "setup": {"a": sa, "b": sb},
        "warnings": warnings,
        "notes": notes,
        "size_bytes": _ratio(
            (a.get("model") or {}).get("size_bytes"), (b.get("model") or {}).get("size_bytes")
        ),
        "speedup": speedup(
            a, b, latencies(a, iterations_a), latencies(b, iterations_b), run_noise, resamples, seed
        ),
        "throughput_ips": _delta(a.get("throughput_ips"), b.get("throughput_ips")),
        "latency_ms": {k: _delta(la.get(k), lb.get(k)) for k in ("p50", "p90", "p99", "mean")},
        "sustained_throughput_ips": _delta(
            (a.get("soak") or {}).get("sustained_throughput_ips"),
            (b.get("soak") or {}).get("sustained_throughput_ips"),
        ),
        "energy_per_inference_j": _delta(
            (a.get("power") or {}).get("energy_per_inference_j"),
            (b.get("power") or {}).get("energy_per_inference_j"),
        ),
        "accuracy": accuracy(a, b),
        **_placement(a, b),
    }


def failures(c: dict, fail_pct: float) -> list[str]:
    """Why ``--fail-on-regression PCT`` fails: a significant slowdown of more
    than PCT percent, or a failed accuracy gate in B."""
    why = []
    s = c["speedup"]
    if s.get("significant") and s["high"] < 1 and s["slowdown_pct"] > fail_pct:
        why.append(
            f"B is {s['slowdown_pct']:.1f}% slower than A (speedup {s['ratio']:.3f}x, "
            f"{s['level'] * 100:.0f}% CI [{s['low']:.3f}, {s['high']:.3f}]), over {fail_pct:g}%"
        )
    acc = c.get("accuracy") or {}
    if acc.get("passed", {}).get("b") is False or acc.get("failed_gates_b"):
        gates = ", ".join(str(g.get("message") or g.get("name")) for g in acc.get("failed_gates_b") or [])
        why.append("B failed its accuracy gate" + (f": {gates}" if gates else ""))
    return why
