"""A sweep as one table, everywhere: the JSON document (``{sweep_id, axes,
points[{<axis values>, run_id, ...figures, pareto}], best}``), the terminal
table, Markdown, and an HTML page with the table and the plot."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from controller.report.cells import num
from controller.sweep import pareto

# (header, figure key, format)
COLUMNS = (
    ("samples/s", "throughput_sps", ".1f"),
    ("p50 ms", "p50_ms", ".3f"),
    ("p99 ms", "p99_ms", ".3f"),
    ("p50/sample", "p50_per_sample_ms", ".3f"),
    ("p99/sample", "p99_per_sample_ms", ".3f"),
    ("init ms", "init_ms", ".1f"),
    ("placement", "placement", ""),
    ("J/inf", "energy_per_inference_j", ".4f"),
)


def document(record: dict[str, Any], objective: str = "throughput", p99_max_ms: float | None = None) -> dict:
    """The sweep's JSON document from its record."""
    points = []
    for e in record["points"]:
        points.append({**e["point"], "run_id": e.get("run_id"), **(e.get("figures") or {})})
    on_front = set(pareto.front(points))
    for i, p in enumerate(points):
        p["pareto"] = i in on_front
    b = pareto.best(points, objective, p99_max_ms)
    best = None
    if b is not None:
        best = {"index": b, "objective": objective, "p99_max_ms": p99_max_ms, **points[b]}
    return {
        "schema": "edgebench.sweep-report/v1",
        "sweep_id": record["sweep_id"],
        "model": record.get("model"),
        "axes": record["axes"],
        "points": points,
        "best": best,
    }


def _columns(doc: dict) -> list[tuple[str, str, str]]:
    """Per-sample latency only when some point has a batch > 1; energy only when metered."""
    cols = []
    for head, key, fmt in COLUMNS:
        if key.endswith("_per_sample_ms") and not any((p.get("batch") or 1) > 1 for p in doc["points"]):
            continue
        if key == "energy_per_inference_j" and not any(p.get(key) is not None for p in doc["points"]):
            continue
        cols.append((head, key, fmt))
    return cols


def _cell(p: dict, key: str, fmt: str) -> str:
    v = p.get(key)
    return str(v if v is not None else "-") if not fmt else num(v, fmt)


def rows(doc: dict) -> tuple[list[str], list[list[str]]]:
    axes = list(doc["axes"])
    cols = _columns(doc)
    head = [*axes, *(c[0] for c in cols), "pareto", "run"]
    body = []
    best = (doc.get("best") or {}).get("index")
    for i, p in enumerate(doc["points"]):
        mark = "*" if p.get("pareto") else ""
        if i == best:
            mark += " best"
        body.append(
            [
                *(str(p.get(a)) for a in axes),
                *(_cell(p, k, f) for _, k, f in cols),
                mark,
                str(p.get("run_id")),
            ]
        )
    return head, body


def best_line(doc: dict) -> str:
    b = doc.get("best")
    if not b:
        return "best: no point qualifies"
    axes = ", ".join(f"{a}={b.get(a)}" for a in doc["axes"])
    if b["objective"] == "p99":
        why = "lowest p99"
    else:
        why = "most samples/s" + (
            f" with p99 <= {b['p99_max_ms']:g} ms" if b.get("p99_max_ms") is not None else ""
        )
    sps, p99 = num(b.get("throughput_sps"), ".1f"), num(b.get("p99_ms"), ".3f")
    return f"best ({why}): {axes}: {sps} samples/s, p99 {p99} ms"


def terminal(doc: dict) -> str:
    head, body = rows(doc)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(head)]
    fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    lines = [f"sweep {doc['sweep_id']}: {len(body)} point(s) of {doc.get('model')}", fmt(head)]
    lines += [fmt(r) for r in body]
    lines.append(best_line(doc))
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    head, body = rows(doc)
    out = [f"# Sweep {doc['sweep_id']}", "", f"Model `{doc.get('model')}`.", ""]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    out += ["| " + " | ".join(r) + " |" for r in body]
    out += ["", best_line(doc), ""]
    return "\n".join(out)


def write_html(doc: dict, dest: Path, plot_png: Path | None) -> None:
    head, body = rows(doc)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    img = ""
    if plot_png is not None and plot_png.is_file():
        data = base64.b64encode(plot_png.read_bytes()).decode()
        img = f'<img alt="throughput against p99" src="data:image/png;base64,{data}">'
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>sweep {html.escape(doc['sweep_id'])}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>"
        f"<h1>Sweep {html.escape(doc['sweep_id'])}</h1><p>Model {html.escape(str(doc.get('model')))}</p>"
        f"<table><tr>{th}</tr>{trs}</table><p>{html.escape(best_line(doc))}</p>{img}</body></html>"
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(page)
