"""The quantize report as terminal text, Markdown and a self-contained HTML
page: sizes, nodes and MACs left in INT8, and with ``--target`` the ranking,
the nodes kept in float and the metric after each step."""

from __future__ import annotations

import html
from typing import Any


def _mib(n: Any) -> str:
    return f"{n / 2**20:.2f} MiB" if isinstance(n, (int, float)) else "-"


def _pct(x: Any) -> str:
    return f"{x * 100:.1f}%" if isinstance(x, (int, float)) else "-"


def _num(x: Any) -> str:
    return f"{x:.5g}" if isinstance(x, (int, float)) else "-"


def _ratio(x: Any) -> str:
    """size before over after: a model can grow (tiny graphs gain Q/DQ nodes and a profile)."""
    if not isinstance(x, (int, float)) or x <= 0:
        return "-"
    return f"{x:g}x smaller" if x >= 1 else f"{1 / x:.3g}x larger"


def summary_rows(r: dict) -> list[tuple[str, str]]:
    o = r.get("options") or {}
    rows = [
        ("output", str(r.get("output") or "none written")),
        ("size", f"{_mib(r.get('size_before_bytes'))} -> {_mib(r.get('size_after_bytes'))} "
                 f"({_ratio(r.get('size_ratio'))})"),
        ("method", f"{o.get('method')}, activations {o.get('activation_type')}"
                   f"{' symmetric' if o.get('symmetric_activations') else ''}, weights {o.get('weight_type')}"
                   + (" per-channel" if o.get("per_channel") else
                      f" per-tensor ({o.get('per_tensor_reason') or 'chosen'})")),
        ("calibration", f"{r.get('calibration_samples')} sample(s)"),
        ("INT8 nodes", f"{r.get('nodes_int8')} of {r.get('nodes')} ({_pct(r.get('nodes_share_int8'))})"),
        ("INT8 MACs", _pct(r.get("macs_share_int8"))),
        ("time", f"{r.get('seconds', '-')} s"),
    ]  # fmt: skip
    # the target search excludes its own choice too: --exclude lists only the user's
    user = [e for e in r.get("excluded") or [] if e not in (r.get("float_nodes") or [])]
    if user:
        rows.append(("kept in float (--exclude)", ", ".join(user)))
    if r.get("target"):
        verdict = "met" if r.get("met") else "NOT met"
        rows.append(
            ("target", f"{r['target']}: {verdict}" + (f" ({_num(r.get('value'))})" if r.get("met") else ""))
        )
        rows.append(("kept in float (target)", ", ".join(r.get("float_nodes") or []) or "none"))
        rows.append(("search cost", str(r.get("cost"))))
    if r.get("fp16"):
        rows.append(("fp16 variant", f"{r['fp16']['output']} ({_mib(r['fp16']['size_bytes'])})"))
    return rows


def render(r: dict) -> str:
    width = max(len(k) for k, _ in summary_rows(r))
    lines = [f"{k:<{width}}  {v}" for k, v in summary_rows(r)]
    for s in r.get("steps") or []:
        lines.append(
            f"  step: {len(s['float_nodes'])} float node(s) -> {_num(s['value'])} {'ok' if s['met'] else ''}"
        )
    return "\n".join(lines)


def markdown(r: dict) -> str:
    out = ["# edgebench quantize", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in summary_rows(r)]
    if r.get("ranking"):
        metric = r["target"].split(">")[0].split("<")[0]
        out += ["", "## Sensitivity ranking (most damaging first)", ""]
        out += [f"| node | {metric} with only this node quantized |", "|---|---|"]
        out += [f"| `{x['node']}` | {_num(x['value'])} |" for x in r["ranking"]]
    if r.get("steps"):
        out += ["", "## Greedy search", "", "| float nodes | value | meets |", "|---|---|---|"]
        out += [
            f"| {len(s['float_nodes'])} | {_num(s['value'])} | {'yes' if s['met'] else 'no'} |"
            for s in r["steps"]
        ]
    return "\n".join(out) + "\n"


def html_page(r: dict) -> str:
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary_rows(r))
    parts = ["<!doctype html><html><head><meta charset=utf-8><title>edgebench quantize</title>",
             "<style>body{font:14px system-ui;margin:2em}td,th{border:1px solid #ddd;padding:.2em .6em;"
             "text-align:left}table{border-collapse:collapse;margin:.6em 0}</style></head><body>",
             "<h1>edgebench quantize</h1>", f"<table>{rows}</table>"]  # fmt: skip
    if r.get("ranking"):
        body = "".join(f"<tr><td>{e(x['node'])}</td><td>{_num(x['value'])}</td></tr>" for x in r["ranking"])
        parts.append(f"<h2>Sensitivity ranking</h2><table><tr><th>node</th><th>value</th></tr>{body}</table>")
    if r.get("steps"):
        cells = [(len(s["float_nodes"]), _num(s["value"]), "yes" if s["met"] else "no") for s in r["steps"]]
        body = "".join(f"<tr><td>{n}</td><td>{v}</td><td>{m}</td></tr>" for n, v, m in cells)
        head = "<tr><th>float nodes</th><th>value</th><th>meets</th></tr>"
        parts.append(f"<h2>Greedy search</h2><table>{head}{body}</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
