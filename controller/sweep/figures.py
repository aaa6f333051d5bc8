"""One sweep point's figures, from its result document: throughput in
samples/s (a batch of N counts N), p50/p99 per call and per sample, init
time, a placement summary, energy per inference when a meter measured it."""

from __future__ import annotations

from typing import Any


def placement_summary(pl: dict | None) -> str:
    """``CUDA 40/42`` (the accelerator's share of the nodes), ``CPU 12/12``, or ``-``."""
    nodes = (pl or {}).get("nodes") or []
    if not nodes:
        return "-"
    counts: dict[str, int] = {}
    for n in nodes:
        counts[str(n.get("device") or "?")] = counts.get(str(n.get("device") or "?"), 0) + 1
    accel = {d: c for d, c in counts.items() if d != "CPU"}
    main = max(accel, key=lambda d: accel[d]) if accel else "CPU"
    text = f"{main} {counts[main]}/{len(nodes)}"
    return text + (" FALLBACK" if (pl or {}).get("fallback") else "")


def of(result: dict) -> dict[str, Any]:
    """The figures a sweep table shows for one run."""
    batch = int(result.get("batch") or 1)
    lat = result.get("latency_ms") or {}
    ips = result.get("throughput_ips")
    sps = result.get("samples_per_s")
    if sps is None and isinstance(ips, (int, float)):
        sps = ips * batch
    power = result.get("power") or {}
    epi = power.get("energy_per_inference_j")
    fig: dict[str, Any] = {
        "status": result.get("status"),
        "batch": batch,
        "throughput_sps": sps,
        "calls_per_s": ips,
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "p50_per_sample_ms": lat["p50"] / batch if isinstance(lat.get("p50"), (int, float)) else None,
        "p99_per_sample_ms": lat["p99"] / batch if isinstance(lat.get("p99"), (int, float)) else None,
        "init_ms": result.get("init_ms"),
        "placement": placement_summary(result.get("placement")),
        "energy_per_inference_j": epi,
        "energy_per_sample_j": epi / batch if isinstance(epi, (int, float)) else None,
        "valid": (result.get("validity") or {}).get("valid"),
    }
    if result.get("error"):
        fig["error"] = result["error"]
    return fig
