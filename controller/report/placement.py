"""Terminal rendering of placement{}: a per-op table and a fallback summary
(red on a colour terminal, plain text otherwise, e.g. in CI logs)."""

from __future__ import annotations

import os
import sys
from typing import TextIO

RED, GREEN, BOLD, RESET = "\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[0m"


def use_color(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return stream.isatty() and "NO_COLOR" not in os.environ


def _pct(x: object) -> str:
    return f"{x * 100:5.1f}%" if isinstance(x, (int, float)) else "    -"


def table(placement: dict, max_rows: int | None = None) -> str:
    """Plain-text per-op table: index, node, op type, device, time share, subgraph."""
    nodes = placement.get("nodes") or []
    rows = [("#", "node", "op", "device", "time", "partition")]
    for i, n in enumerate(nodes[:max_rows] if max_rows else nodes):
        part = n.get("subgraph") or (f"delegate {n['partition']}" if n.get("partition") is not None else "")
        share = _pct(n.get("time_share"))
        rows.append((str(i), str(n["name"]), str(n["op_type"]), str(n["device"]), share, part))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if max_rows and len(nodes) > max_rows:
        lines.append(f"... {len(nodes) - max_rows} more node(s)")
    return "\n".join(lines)


def summary(placement: dict, color: bool = False) -> str:
    """One block: totals per device, partitions, and the fallback verdict."""
    if placement.get("error"):
        return f"placement unavailable: {placement['error']}"
    by_dev = ", ".join(f"{d} {n}" for d, n in sorted((placement.get("nodes_by_device") or {}).items()))
    head = (
        f"{placement.get('total_nodes', 0)} nodes ({by_dev}); "
        f"{placement.get('partitions', 0)} accelerator partition(s); "
        f"CPU time {_pct(placement.get('cpu_time_share')).strip()}"
    )
    if not placement.get("fallback"):
        verdict = "no CPU fallback"
        return head + "\n" + (f"{GREEN}{verdict}{RESET}" if color else verdict)
    fb = placement.get("fallback_nodes") or []
    names = ", ".join(f"{n['name']} ({n['op_type']})" for n in fb[:8]) + (" ..." if len(fb) > 8 else "")
    share = _pct(placement.get("cpu_time_share")).strip()
    lines = [f"FALLBACK: {len(fb)} op(s) on CPU, {share} of inference time"]
    if names:
        lines.append(f"  ops: {names}")
    for r in placement.get("fallback_reasons") or []:
        lines.append(f"  why: {r}")
    text = "\n".join(lines)
    return head + "\n" + (f"{BOLD}{RED}{text}{RESET}" if color else text)


def render(placement: dict, color: bool | None = None, max_rows: int | None = None) -> str:
    color = use_color() if color is None else color
    return table(placement, max_rows) + "\n\n" + summary(placement, color)
