"""ONNX Runtime placement: ORT's own profile -> placement{...}.

Each executed kernel is a profile event ``{"cat": "Node", "name":
"<node>_kernel_time", "dur": us, "args": {"op_name", "provider"}}``. An EP that
compiles subgraphs (OpenVINO, TensorRT, TIDL...) shows one fused node per
partition (``OpenVINO-EP-subgraph_1``, ``TRTKernel_graph_*``); we expand it
into the original graph's member nodes: the original nodes that no other
executed kernel accounts for (by exact name, or a name ORT derived from theirs,
see ``_origin``), grouped into connected components in graph
order and matched to the fused nodes in execution order. A member's time share
is its fused node's time split evenly (the EP reports no finer timing).

Memcpy nodes (``MemcpyToHost`` / ``MemcpyFromHost``) are not graph nodes: they
count host<->device transitions.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from agent.onnx_proto import OnnxNode
from agent.placement.logs import parse_ort_ep_errors, parse_ort_placements

CPU = "CPUExecutionProvider"
_MEMCPY = ("MemcpyToHost", "MemcpyFromHost")


_DEVICE_NAMES = {"Tensorrt": "TensorRT", "Dml": "DirectML", "Nv": "NvTensorRtRtx"}


def device_name(provider: str) -> str:
    """``OpenVINOExecutionProvider`` -> ``OpenVINO``: the key in nodes_by_device."""
    short = provider[: -len("ExecutionProvider")] if provider.endswith("ExecutionProvider") else provider
    return _DEVICE_NAMES.get(short, short)


def load_profile(path: Path) -> list[dict]:
    with open(path) as f:
        data = json.load(f)
    return data if isinstance(data, list) else data.get("traceEvents", [])


def kernel_times(events: list[dict]) -> dict[str, dict]:
    """{node name: {op_type, provider, dur_us (summed), order}} from Node events."""
    out: dict[str, dict] = {}
    for ev in events:
        if ev.get("cat") != "Node":
            continue
        name = ev.get("name", "")
        if not name.endswith("_kernel_time"):
            continue  # fence_before / fence_after
        args = ev.get("args") or {}
        node = name[: -len("_kernel_time")]
        rec = out.get(node)
        if rec is None:
            rec = out[node] = {
                "op_type": args.get("op_name", ""),
                "provider": args.get("provider", CPU),
                "dur_us": 0.0,
                "order": len(out),
            }
        rec["dur_us"] += float(ev.get("dur", 0))
    return out


def _fused_name(node: str, provider: str) -> str:
    # the profile prefixes fused nodes with their provider: OpenVINOExecutionProvider_OpenVINO-EP-subgraph_1_0
    return node[len(provider) + 1 :] if node.startswith(provider + "_") else node


_TOKEN = re.compile(r"_token_\d+$")


def _origin(name: str, orig_names: set[str]) -> str:
    """The original node an ORT-made CPU node stands for, else ``name``. ORT
    de-duplicates names as ``<name>_token_<N>`` and names fused nodes
    ``<node>/<Pass>`` (``n1/MatMulAddFusion``) or ``fused <node>`` (activation
    fusion). Matching is exact, never by prefix: ``n1`` and ``n10`` are different
    nodes."""
    if name in orig_names:
        return name
    base = _TOKEN.sub("", name)
    base = base[len("fused ") :] if base.startswith("fused ") else base
    return base if base in orig_names or "/" not in base else base.rsplit("/", 1)[0]


def _components(members: list[OnnxNode]) -> list[list[OnnxNode]]:
    """Connected components (through tensors) of these nodes, in graph order."""
    idx = {n.name: i for i, n in enumerate(members)}
    parent = list(range(len(members)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    producer: dict[str, int] = {}
    for i, n in enumerate(members):
        for t in n.outputs:
            producer[t] = i
    for i, n in enumerate(members):
        for t in n.inputs:
            j = producer.get(t)
            if j is not None:
                parent[find(i)] = find(j)
    groups: dict[int, list[OnnxNode]] = defaultdict(list)
    for n in members:
        groups[find(idx[n.name])].append(n)
    return sorted(groups.values(), key=lambda g: idx[g[0].name])


def build(
    events: list[dict],
    graph_nodes: list[OnnxNode],
    requested: list[str],
    session_providers: list[str],
    dropped: list[dict[str, str]],
    log_text: str = "",
) -> dict:
    kt = kernel_times(events)
    memcpy = {k: v for k, v in kt.items() if v["op_type"] in _MEMCPY}
    executed = {k: v for k, v in kt.items() if k not in memcpy}
    orig_names = {n.name for n in graph_nodes}
    fused = {k: v for k, v in executed.items() if v["provider"] != CPU and k not in orig_names}
    rows: list[dict] = []
    for k, v in executed.items():
        if k in fused:
            continue
        rows.append({"name": k, "op_type": v["op_type"], "provider": v["provider"], "dur_us": v["dur_us"]})

    partitions_detail: list[dict] = []
    if fused:
        # original nodes that no executed kernel accounts for went into the fused subgraphs
        claimed = set(executed) | {_origin(k, orig_names) for k in executed if k not in fused}
        members = [n for n in graph_nodes if n.name not in claimed]
        comps = _components(members)
        fused_sorted = sorted(fused.items(), key=lambda kv: kv[1]["order"])
        if len(comps) != len(fused_sorted):
            comps = _regroup(comps, len(fused_sorted))
        for (fname, frec), comp in zip(fused_sorted, comps, strict=True):
            share = frec["dur_us"] / max(1, len(comp))
            sub = frec["op_type"] or _fused_name(fname, frec["provider"])
            partitions_detail.append(
                {
                    "name": sub,
                    "provider": frec["provider"],
                    "op_type": frec["op_type"],
                    "nodes": [n.name for n in comp],
                }
            )
            for n in comp:
                rows.append(
                    {
                        "name": n.name,
                        "op_type": n.op_type,
                        "provider": frec["provider"],
                        "dur_us": share,
                        "subgraph": sub,
                    }
                )
    total_us = sum(r["dur_us"] for r in rows) or 1.0
    for r in rows:
        r["device"] = device_name(r["provider"])
        r["time_share"] = r["dur_us"] / total_us

    accel_requested = [p for p in requested if p != CPU]
    by_device: dict[str, int] = defaultdict(int)
    for r in rows:
        by_device[r["device"]] += 1
    accelerated = sum(1 for r in rows if r["provider"] != CPU)
    cpu_rows = [r for r in rows if r["provider"] == CPU]
    if fused:
        partitions = len(fused)
    else:
        partitions = _accelerated_runs(rows, graph_nodes)
    ep_errors = parse_ort_ep_errors(log_text)
    reasons: list[str] = [
        f"requested provider {d['provider']} {d['reason']}"
        + (f": {ep_errors[d['provider']]}" if ep_errors.get(d["provider"]) else "")
        for d in dropped
    ]
    if accel_requested and cpu_rows:
        reasons.append(
            f"{len(cpu_rows)} node(s) ran on CPU although {', '.join(accel_requested)} was requested"
        )
    fallback = bool(reasons)
    # a node counts as a fallback when the run meant it for an accelerator
    fallback_nodes = (
        [
            {"name": r["name"], "op_type": r["op_type"], "device": r["device"], "time_share": r["time_share"]}
            for r in cpu_rows
        ]
        if accel_requested
        else []
    )
    cross = parse_ort_placements(log_text)
    return {
        "runtime": "onnxruntime",
        "total_nodes": len(rows),
        "nodes_by_device": dict(by_device),
        "accelerated_nodes": accelerated,
        "partitions": partitions,
        "fallback_nodes": fallback_nodes,
        "cpu_time_share": sum(r["time_share"] for r in cpu_rows),
        "fallback": fallback,
        "fallback_reasons": reasons,
        "requested_providers": list(requested),
        "session_providers": list(session_providers),
        "dropped_providers": [d["provider"] for d in dropped],
        "memcpy_transitions": len(memcpy),
        "partitions_detail": partitions_detail,
        "log_cross_check": _cross_check(cross, executed),
        "time_source": "onnxruntime profiling (separate pass)",
        "nodes": [
            {k: r.get(k) for k in ("name", "op_type", "device", "provider", "time_share", "subgraph")}
            for r in sorted(rows, key=lambda r: _order(r, graph_nodes))
        ],
    }


def _order(row: dict, graph_nodes: list[OnnxNode]) -> int:
    for i, n in enumerate(graph_nodes):
        if n.name == row["name"]:
            return i
    return len(graph_nodes)


def _regroup(comps: list[list[OnnxNode]], n: int) -> list[list[OnnxNode]]:
    """The EP grouped differently than connectivity says: fall back to one
    group per fused node, merging trailing components into the last one."""
    if n <= 0:
        return []
    if len(comps) < n:
        return comps + [[] for _ in range(n - len(comps))]
    return comps[: n - 1] + [[x for c in comps[n - 1 :] for x in c]]


def _accelerated_runs(rows: list[dict], graph_nodes: list[OnnxNode]) -> int:
    """For EPs without fused nodes (CUDA): connected groups of accelerated nodes."""
    accel = {r["name"] for r in rows if r["provider"] != CPU}
    if not accel:
        return 0
    nodes = [n for n in graph_nodes if n.name in accel]
    if not nodes:
        return 1
    return len(_components(nodes))


def _cross_check(cross: dict[str, dict], executed: dict[str, dict]) -> dict:
    """Compare ORT's verbose placement log with the profile (node counts per provider)."""
    if not cross:
        return {"available": False}
    log_counts = {p: v["count"] for p, v in cross.items()}
    prof_counts: dict[str, int] = defaultdict(int)
    for v in executed.values():
        prof_counts[v["provider"]] += 1
    return {"available": True, "log_nodes": log_counts, "agrees": log_counts == dict(prof_counts)}
