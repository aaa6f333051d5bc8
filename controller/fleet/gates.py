"""A plan's gates, evaluated on the controller against each result.

    gates: {min_throughput_ips: 100, max_p99_ms: 20, min_sustained_ratio: 0.8, max_miss_rate: 0.01}

Each gate reads one figure of the result. A figure the result lacks fails
its gate (a throughput gate on a run that measured none is not a pass),
except ``max_miss_rate``: only runs with a load pattern have one, so without
it the gate is skipped and says so. The run's own ``gates[]`` (fallback,
validation, soak target) are reported beside them under their own names."""

from __future__ import annotations

from typing import Any

# gate -> (figure path in the result, "min" or "max", unit for messages)
GATES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "min_throughput_ips": (("throughput_ips",), "min", " inf/s"),
    "max_p99_ms": (("latency_ms", "p99"), "max", " ms"),
    "min_sustained_ratio": (("soak", "sustained_ratio"), "min", ""),
    "max_miss_rate": (("load", "miss_rate"), "max", ""),
}
OPTIONAL = {"max_miss_rate"}


def check(gates: Any) -> str | None:
    """What is wrong with a plan's ``gates:`` mapping (None when fine)."""
    if not isinstance(gates, dict):
        return "gates must be a mapping, e.g. {min_throughput_ips: 100}"
    for name, limit in gates.items():
        if name not in GATES:
            return f"unknown gate {name!r} (known: {', '.join(GATES)})"
        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            return f"gate {name} needs a number, got {limit!r}"
    return None


def figure(result: dict, path: tuple[str, ...]) -> float | None:
    cur: Any = result
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    return float(cur) if isinstance(cur, (int, float)) and not isinstance(cur, bool) else None


def evaluate(result: dict, gates: dict[str, float]) -> list[dict]:
    """One entry per gate: ``{name, passed, skipped, value, limit, message, source}``;
    the plan's gates first, then the run's own (``source: run``)."""
    out = []
    for name, limit in gates.items():
        path, sense, unit = GATES[name]
        v = figure(result, path)
        figure_name = ".".join(path)
        if v is None:
            skipped = name in OPTIONAL
            msg = f"{figure_name}: not in the result" + (" (no load pattern): skipped" if skipped else "")
            out.append(_gate(name, skipped, skipped, None, limit, msg))
            continue
        passed = v >= limit if sense == "min" else v <= limit
        op = ">=" if sense == "min" else "<="
        msg = f"{figure_name} {v:.4g}{unit} {'meets' if passed else 'misses'} {op} {limit:g}{unit}"
        out.append(_gate(name, passed, False, v, limit, msg))
    for g in result.get("gates") or []:
        entry = _gate(str(g.get("name")), bool(g.get("passed", True)), False, g.get("value"), None, "")
        entry.update(message=str(g.get("message") or ""), source="run")
        if g.get("metric") is not None:  # a validate gate: the matrix shows value against threshold
            entry.update(metric=g["metric"], output=g.get("output"), limit=g.get("threshold"))
        out.append(entry)
    return out


def _gate(name: str, passed: bool, skipped: bool, value: Any, limit: Any, message: str) -> dict:
    return {
        "name": name,
        "passed": passed,
        "skipped": skipped,
        "value": value,
        "limit": limit,
        "message": message,
        "source": "plan",
    }
