"""Two results side by side: throughput and latency deltas, and placement
changes: the counts (nodes, accelerated nodes, partitions), the CPU time share
and the fallback flag, ops that changed device (e.g. back to CPU after a BSP
update), and nodes present in only one run (a new SDK or graph optimization
that fused or split them)."""

from __future__ import annotations

from controller.report.terminal import num

# placement counts and flag whose change is a placement change; cpu_time_share
# is shown beside them but varies run to run, so it alone is not a change
PLACEMENT_KEYS = ("total_nodes", "accelerated_nodes", "partitions", "fallback")
_LABELS = {
    "total_nodes": "nodes",
    "accelerated_nodes": "accelerated",
    "partitions": "partitions",
    "cpu_time_share": "CPU time",
    "fallback": "fallback",
}
_MAX_LISTED = 20


def _nodes(result: dict) -> dict[str, dict]:
    pl = result.get("placement") or {}
    return {n["name"]: n for n in pl.get("nodes") or [] if "name" in n}


def _node(n: dict) -> dict:
    return {"name": n["name"], "op_type": n.get("op_type"), "device": n.get("device", "?")}


def _num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _delta(x: object, y: object) -> dict:
    ok = _num(x) and _num(y)
    return {
        "a": x,
        "b": y,
        "delta": (y - x) if ok else None,
        "pct": ((y - x) / x * 100) if ok and x else None,
    }


def compare(a: dict, b: dict) -> dict:
    la, lb = a.get("latency_ms") or {}, b.get("latency_ms") or {}
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
        "a": a.get("run_id"),
        "b": b.get("run_id"),
        "throughput_ips": _delta(a.get("throughput_ips"), b.get("throughput_ips")),
        "latency_ms": {k: _delta(la.get(k), lb.get(k)) for k in ("p50", "p90", "p99", "mean")},
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


def _cell(key: str, x: object) -> str:
    if key == "fallback":
        return "-" if x is None else ("yes" if x else "no")
    if key == "cpu_time_share":
        return f"{x * 100:.1f}%" if _num(x) else "-"
    return str(x) if _num(x) else "-"


def _listed(nodes: list[dict]) -> str:
    shown = ", ".join(f"{n['name']} ({n['op_type']}, {n['device']})" for n in nodes[:_MAX_LISTED])
    more = len(nodes) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def render(c: dict) -> str:
    def row(label: str, d: dict) -> str:
        pct = f"{d['pct']:+.1f}%" if d["pct"] is not None else "-"
        return f"{label:<14} {num(d['a']):>10} {num(d['b']):>10} {num(d['delta'], '+.3f'):>10} {pct:>8}"

    lines = [
        f"{'':<14} {'A':>10} {'B':>10} {'delta':>10} {'':>8}",
        f"A = {c['a']}   B = {c['b']}",
        row("throughput", c["throughput_ips"]),
    ]
    lines += [row(f"latency {k}", v) for k, v in c["latency_ms"].items()]
    changed = set(c.get("placement_changes") or [])
    if c.get("placement"):
        lines.append(f"{'placement':<14} {'A':>10} {'B':>10}")
        for key, d in c["placement"].items():
            mark = "  changed" if key in changed else ""
            lines.append(f"  {_LABELS[key]:<12} {_cell(key, d['a']):>10} {_cell(key, d['b']):>10}{mark}")
    if c["moved"]:
        lines.append("ops that changed device:")
        lines += [f"  {m['name']}: {m['from']} -> {m['to']}" for m in c["moved"]]
    if c.get("removed_nodes"):
        lines.append("nodes only in A: " + _listed(c["removed_nodes"]))
    if c.get("added_nodes"):
        lines.append("nodes only in B: " + _listed(c["added_nodes"]))
    if c["new_fallback"]:
        lines.append("new CPU fallback in B: " + ", ".join(c["new_fallback"]))
    if c["fixed_fallback"]:
        lines.append("fallback gone in B: " + ", ".join(c["fixed_fallback"]))
    keys = ("moved", "removed_nodes", "added_nodes", "new_fallback", "fixed_fallback", "placement_changes")
    if not any(c.get(k) for k in keys):
        lines.append("placement unchanged")
    return "\n".join(lines)
