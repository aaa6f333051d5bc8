"""Pipeline against pipeline (``edgebench compare`` of two pipeline runs):
the application's rate, frame and end-to-end latency, the pipeline overhead
and each stage's p50 matched by stage name (a stage only one run has shows
on its side alone)."""

from __future__ import annotations

from typing import Any

from controller.report.cells import num


def _delta(x: Any, y: Any) -> dict[str, Any]:
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
    return {
        "a": x,
        "b": y,
        "delta": (y - x) if ok else None,
        "pct": ((y - x) / x * 100) if ok and x else None,
    }


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """None unless both results are pipeline runs."""
    pa, pb = a.get("pipeline"), b.get("pipeline")
    if not pa or not pb:
        return None
    sa = {s["name"]: s for s in pa.get("stages") or []}
    sb = {s["name"]: s for s in pb.get("stages") or []}
    names = [*sa, *(n for n in sb if n not in sa)]
    return {
        "headline": {"a": pa.get("headline"), "b": pb.get("headline")},
        "achieved_rate_hz": _delta(pa.get("achieved_rate_hz"), pb.get("achieved_rate_hz")),
        "frame_p50_ms": _delta(
            (pa.get("service_ms") or {}).get("p50"), (pb.get("service_ms") or {}).get("p50")
        ),
        "latency_p99_ms": _delta(
            (pa.get("latency_ms") or {}).get("p99"), (pb.get("latency_ms") or {}).get("p99")
        ),
        "overhead_ms": _delta(
            (pa.get("overhead_ms") or {}).get("mean"), (pb.get("overhead_ms") or {}).get("mean")
        ),
        "misses": _delta(
            (pa.get("misses") or {}).get("late", 0) + (pa.get("misses") or {}).get("dropped", 0),
            (pb.get("misses") or {}).get("late", 0) + (pb.get("misses") or {}).get("dropped", 0),
        ),
        "stages": [
            {"name": n, "p50_ms": _delta((sa.get(n) or {}).get("p50_ms"), (sb.get(n) or {}).get("p50_ms"))}
            for n in names
        ],
    }


def rows(c: dict[str, Any] | None) -> list[tuple[str, str, str, str, str]]:
    """The pipeline rows of the comparison table (label, A, B, delta, change)."""
    if not c:
        return []

    def row(label: str, d: dict[str, Any], fmt: str = ".2f") -> tuple[str, str, str, str, str]:
        pct = f"{d['pct']:+.1f}%" if d.get("pct") is not None else "-"
        return (label[:18], num(d["a"], fmt), num(d["b"], fmt), num(d["delta"], "+" + fmt), pct)

    out = [
        row("app FPS", c["achieved_rate_hz"]),
        row("frame p50 ms", c["frame_p50_ms"]),
        row("e2e p99 ms", c["latency_p99_ms"]),
        row("overhead ms", c["overhead_ms"], ".3f"),
        row("misses", c["misses"], "d"),
    ]
    return out + [row(f"  {s['name']} p50", s["p50_ms"]) for s in c["stages"]]
