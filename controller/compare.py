"""Two results side by side: throughput and latency deltas, and placement
changes (ops that moved to CPU, e.g. after a BSP update)."""

from __future__ import annotations

from controller.report.terminal import _f


def _devices(result: dict) -> dict[str, str]:
    pl = result.get("placement") or {}
    return {n["name"]: n.get("device", "?") for n in pl.get("nodes") or [] if "name" in n}


def compare(a: dict, b: dict) -> dict:
    def delta(x: object, y: object) -> dict:
        ok = isinstance(x, (int, float)) and isinstance(y, (int, float))
        return {
            "a": x,
            "b": y,
            "delta": (y - x) if ok else None,
            "pct": ((y - x) / x * 100) if ok and x else None,
        }

    la, lb = a.get("latency_ms") or {}, b.get("latency_ms") or {}
    da, db = _devices(a), _devices(b)
    moved = [{"name": n, "from": da[n], "to": db[n]} for n in sorted(set(da) & set(db)) if da[n] != db[n]]
    fa = {n["name"] for n in (a.get("placement") or {}).get("fallback_nodes") or []}
    fb = {n["name"] for n in (b.get("placement") or {}).get("fallback_nodes") or []}
    return {
        "a": a.get("run_id"),
        "b": b.get("run_id"),
        "throughput_ips": delta(a.get("throughput_ips"), b.get("throughput_ips")),
        "latency_ms": {k: delta(la.get(k), lb.get(k)) for k in ("p50", "p90", "p99", "mean")},
        "moved": moved,
        "new_fallback": sorted(fb - fa),
        "fixed_fallback": sorted(fa - fb),
    }


def render(c: dict) -> str:
    def row(label: str, d: dict) -> str:
        pct = f"{d['pct']:+.1f}%" if d["pct"] is not None else "-"
        return f"{label:<14} {_f(d['a']):>10} {_f(d['b']):>10} {_f(d['delta'], '+.3f'):>10} {pct:>8}"

    lines = [f"{'':<14} {'A':>10} {'B':>10} {'delta':>10} {'':>8}", f"A = {c['a']}   B = {c['b']}"]
    lines.insert(0, row("throughput", c["throughput_ips"]))
    lines = [lines[1], lines[2], lines[0]] + [row(f"latency {k}", v) for k, v in c["latency_ms"].items()]
    if c["moved"]:
        lines.append("placement changes:")
        lines += [f"  {m['name']}: {m['from']} -> {m['to']}" for m in c["moved"]]
    if c["new_fallback"]:
        lines.append("new CPU fallback in B: " + ", ".join(c["new_fallback"]))
    if c["fixed_fallback"]:
        lines.append("fallback gone in B: " + ", ".join(c["fixed_fallback"]))
    if not (c["moved"] or c["new_fallback"] or c["fixed_fallback"]):
        lines.append("placement unchanged")
    return "\n".join(lines)
