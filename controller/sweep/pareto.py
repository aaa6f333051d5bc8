"""Throughput against p99: the Pareto front (no other point has more samples/s
at a p99 as low) and the best point for an objective: the most throughput
under a p99 bound, or the lowest p99."""

from __future__ import annotations

from typing import Any

OBJECTIVES = ("throughput", "p99")


def _ok(p: dict[str, Any]) -> bool:
    return isinstance(p.get("throughput_sps"), (int, float)) and isinstance(p.get("p99_ms"), (int, float))


def front(points: list[dict[str, Any]]) -> list[int]:
    """Indices of the points no other point dominates (higher throughput and
    lower p99, at least one strictly)."""
    out = []
    for i, p in enumerate(points):
        if not _ok(p):
            continue
        dominated = any(
            _ok(q)
            and q["throughput_sps"] >= p["throughput_sps"]
            and q["p99_ms"] <= p["p99_ms"]
            and (q["throughput_sps"] > p["throughput_sps"] or q["p99_ms"] < p["p99_ms"])
            for j, q in enumerate(points)
            if j != i
        )
        if not dominated:
            out.append(i)
    return out


def best(
    points: list[dict[str, Any]], objective: str = "throughput", p99_max_ms: float | None = None
) -> int | None:
    """The index of the best point, None when none qualifies."""
    cands = [i for i, p in enumerate(points) if _ok(p)]
    if objective == "p99":
        return min(cands, key=lambda i: points[i]["p99_ms"]) if cands else None
    if p99_max_ms is not None:
        cands = [i for i in cands if points[i]["p99_ms"] <= p99_max_ms]
    return max(cands, key=lambda i: points[i]["throughput_sps"]) if cands else None
