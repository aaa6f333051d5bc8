"""LiteRT placement: the interpreter's node list after ``allocate_tensors()``.

``_get_ops_details()`` lists the model's original nodes followed by one
``DELEGATE`` node per partition a delegate took. A DELEGATE node shows only the
partition's boundary tensors, so the original nodes it covers are found by
walking back from its outputs through producers until its inputs are reached.
Original nodes no delegate covers run on the builtin CPU kernels.

LiteRT's Python API has no per-op timing, so time shares are null here; the
delegate's own log lines (VX, TIDL, TFLite core) are parsed as a cross-check.
"""

from __future__ import annotations

from collections import defaultdict

from agent.placement.logs import parse_delegate_logs


def covered_nodes(ops: list[dict]) -> dict[int, list[int]]:
    """{DELEGATE node index: [original node indices it replaced]}."""
    orig = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer: dict[int, dict] = {}
    for o in orig:
        for t in o["outputs"]:
            producer[int(t)] = o
    out: dict[int, list[int]] = {}
    for d in ops:
        if d["op_name"] != "DELEGATE":
            continue
        boundary = {int(t) for t in d["inputs"]}
        seen: set[int] = set()
        stack = [int(t) for t in d["outputs"]]
        while stack:
            t = stack.pop()
            if t in boundary:
                continue
            p = producer.get(t)
            if p is None or p["index"] in seen:
                continue
            seen.add(p["index"])
            stack.extend(int(x) for x in p["inputs"] if int(x) >= 0)
        out[d["index"]] = sorted(seen)
    return out


def build(ops: list[dict], delegate: str, external: bool, log_text: str = "") -> dict:
    cover = covered_nodes(ops)
    owner: dict[int, int] = {}
    for d_idx, members in cover.items():
        for m in members:
            owner[m] = d_idx
    rows = []
    for o in ops:
        if o["op_name"] == "DELEGATE":
            continue
        d = owner.get(o["index"])
        rows.append(
            {
                "name": f"{o['op_name']}_{o['index']}",
                "op_type": o["op_name"],
                "device": delegate if d is not None else "CPU",
                "partition": d,
                "time_share": None,
            }
        )
    by_device: dict[str, int] = defaultdict(int)
    for r in rows:
        by_device[r["device"]] += 1
    cpu_rows = [r for r in rows if r["device"] == "CPU"]
    partitions = len(cover)
    # an external delegate was asked for: anything on the CPU is a fallback. With
    # the default XNNPACK delegate only a graph it partly took counts.
    meant_for_delegate = external or partitions > 0
    reasons = []
    if external and partitions == 0:
        reasons.append(f"delegate {delegate} took no nodes")
    if meant_for_delegate and cpu_rows:
        reasons.append(f"{len(cpu_rows)} node(s) ran on CPU instead of {delegate}")
    logs = parse_delegate_logs(log_text)
    return {
        "runtime": "litert",
        "total_nodes": len(rows),
        "nodes_by_device": dict(by_device),
        "accelerated_nodes": len(rows) - len(cpu_rows),
        "partitions": partitions,
        "fallback_nodes": [
            {"name": r["name"], "op_type": r["op_type"], "device": "CPU", "time_share": None}
            for r in cpu_rows
        ]
        if meant_for_delegate
        else [],
        "cpu_time_share": None,
        "fallback": bool(reasons),
        "fallback_reasons": reasons,
        "delegate": delegate,
        "log_cross_check": _cross_check(logs, len(rows) - len(cpu_rows), partitions),
        "time_source": "unavailable (LiteRT Python API has no per-op timing)",
        "nodes": rows,
    }


def _cross_check(logs: dict, delegated: int, partitions: int) -> dict:
    if not logs:
        return {"available": False}
    out: dict = {"available": True, **logs}
    claims = []
    if "tidl" in logs:
        claims.append((logs["tidl"]["delegated_nodes"], logs["tidl"]["partitions"]))
    for r in logs.get("tflite", []):
        claims.append((r["delegated_nodes"], r["partitions"]))
    if claims:
        out["agrees"] = any(c == (delegated, partitions) for c in claims)
    return out
