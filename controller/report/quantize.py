"""The quantize report as terminal text, Markdown and a self-contained HTML
page: sizes, nodes, Convs and MACs left in INT8, the hazards of the model
written (``--explain`` prints that section alone), and with ``--target`` the
search's phases, the nodes kept in float and the metric after each step."""

from __future__ import annotations

import html
from typing import Any


def _mib(n: Any) -> str:
    return f"{n / 2**20:.2f} MiB" if isinstance(n, (int, float)) else "-"


def _pct(x: Any) -> str:
    return f"{x * 100:.1f}%" if isinstance(x, (int, float)) else "-"


def _num(x: Any) -> str:
    return f"{x:.5g}" if isinstance(x, (int, float)) else "-"


def hazard_rows(section: dict | None) -> list[tuple[str, str, str, str]]:
    """(kind, node, levels left, detail + the nodes to keep in float), worst first."""
    rows = []
    for h in (section or {}).get("hazards", []):
        keep = ", ".join(h["keep_float"])
        rows.append((h["kind"], h["node"], f"{h['levels']:.3g}", f"{h['detail']}; keep in float: {keep}"))
    return rows


def hazards_text(section: dict | None) -> str:
    if not section:
        return ""
    t = section.get("thresholds", {})
    head = (f"hazards: {len(section.get('hazards', []))} (joins >= {t.get('ratio', '-'):g}x, "
            f"< {t.get('levels', '-'):g} levels, decision {t.get('decision', '-'):g}; "
            f"{section.get('samples', 0)} calibration sample(s) read)")  # fmt: skip
    return "\n".join(
        [head] + [f"  {k:<14} {n}  [{lv} level(s)]  {d}" for k, n, lv, d in hazard_rows(section)]
    )


def _ratio(x: Any) -> str:
    """size before over after: a model can grow (tiny graphs gain Q/DQ nodes and a profile)."""
    if not isinstance(x, (int, float)) or x <= 0:
        return "-"
    return f"{x:g}x smaller" if x >= 1 else f"{1 / x:.3g}x larger"


def summary_rows(r: dict) -> list[tuple[str, str]]:
    o = r.get("options") or {}
    if "options" not in r:  # --explain: the hazards alone
        return [("model", str(r.get("model")))]
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
        ("INT8 Convs", f"{r.get('convs_int8', '-')} of {r.get('convs', '-')}"),
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
        if r.get("float_value") is not None:
            rows.append(
                ("float model", f"{r['target'].split('>')[0].split('<')[0]} {_num(r['float_value'])}")
            )
        rows.append(("kept in float (target)", ", ".join(r.get("float_nodes") or []) or "none"))
        rows.append(("search cost", f"{r.get('cost')} ({r.get('search_seconds', '-')} s)"))
    if r.get("fp16"):
        rows.append(("fp16 variant", f"{r['fp16']['output']} ({_mib(r['fp16']['size_bytes'])})"))
    return rows


def render(r: dict) -> str:
    width = max(len(k) for k, _ in summary_rows(r))
    lines = [f"{k:<{width}}  {v}" for k, v in summary_rows(r)]
    for s in r.get("steps") or []:
        phase = f"[{s['phase']}] " if s.get("phase") else ""
        ok = "ok" if s["met"] else ""
        lines.append(f"  step: {phase}{len(s['float_nodes'])} float node(s) -> {_num(s['value'])} {ok}")
    if r.get("hazards"):
        lines.append(hazards_text(r["hazards"]))
    return "\n".join(lines)


def markdown(r: dict) -> str:
    out = ["# edgebench quantize", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in summary_rows(r)]
    if r.get("hazards"):
        out += [
            "",
            "## Hazards (worst first)",
            "",
            "| kind | node | levels left | what |",
            "|---|---|---|---|",
        ]
        out += [f"| {k} | `{n}` | {lv} | {d} |" for k, n, lv, d in hazard_rows(r["hazards"])]
    if r.get("ranking"):
        out += ["", "## Sensitivity ranking (per-tensor error, most damaging first)", ""]
        out += ["| node | op | SQNR dB | lost dB |", "|---|---|---|---|"]
        out += [f"| `{x['node']}` | {x['op']} | {x['sqnr_db']} | {x['loss_db']} |" for x in r["ranking"][:30]]
    if r.get("steps"):
        out += ["", "## Search", "", "| phase | float nodes | value | meets |", "|---|---|---|---|"]
        out += [
            f"| {s.get('phase', '')} | {len(s['float_nodes'])} | {_num(s['value'])} "
            f"| {'yes' if s['met'] else 'no'} |"
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
    if r.get("hazards"):
        body = "".join(f"<tr><td>{e(k)}</td><td>{e(n)}</td><td>{lv}</td><td>{e(d)}</td></tr>"
                       for k, n, lv, d in hazard_rows(r["hazards"]))  # fmt: skip
        head = "<tr><th>kind</th><th>node</th><th>levels left</th><th>what</th></tr>"
        parts.append(f"<h2>Hazards</h2><table>{head}{body}</table>")
    if r.get("ranking"):
        body = "".join(f"<tr><td>{e(x['node'])}</td><td>{x['sqnr_db']}</td><td>{x['loss_db']}</td></tr>"
                       for x in r["ranking"][:30])  # fmt: skip
        head = "<tr><th>node</th><th>SQNR dB</th><th>lost dB</th></tr>"
        parts.append(f"<h2>Sensitivity ranking</h2><table>{head}{body}</table>")
    if r.get("steps"):
        cells = [(s.get("phase", ""), len(s["float_nodes"]), _num(s["value"]), "yes" if s["met"] else "no")
                 for s in r["steps"]]  # fmt: skip
        body = "".join(
            f"<tr><td>{e(p)}</td><td>{n}</td><td>{v}</td><td>{m}</td></tr>" for p, n, v, m in cells
        )
        head = "<tr><th>phase</th><th>float nodes</th><th>value</th><th>meets</th></tr>"
        parts.append(f"<h2>Search</h2><table>{head}{body}</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
