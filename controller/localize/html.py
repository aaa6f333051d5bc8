"""localize's HTML report: SQNR against float along the graph's depth (the
device's and the host's simulated QDQ), the verdict marked, then the probes
and the per-tensor table. matplotlib (the [controller] extra) draws the
figure; it is imported on first use and refused in one line without it."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from controller import extras


def sqnr_png(doc: dict) -> bytes | None:
    rows = [t for t in doc["tensors"] if t.get("sqnr_db") is not None]
    if not rows:
        return None
    extras.need("matplotlib", "the localize HTML plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    depth = [t["depth"] for t in rows]
    ax.plot(depth, [t["sqnr_db"] for t in rows], ".-", linewidth=1, label="device vs float")
    host = [(t["depth"], t["host_sqnr_db"]) for t in rows if t.get("host_sqnr_db") is not None]
    if host:
        ax.plot(*zip(*host, strict=True), "x", markersize=3, alpha=0.6, label="host QDQ vs float")
    v = doc.get("verdict")
    if v:
        ax.axvline(v["depth"], color="#c0392b", linestyle="--", label=f"verdict: {v['tensor']}")
    ax.set_xlabel("depth (float graph node index)")
    ax.set_ylabel("SQNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _cell(x: object) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return html.escape("-" if x is None else str(x))


def render(doc: dict) -> str:
    v = doc.get("verdict")
    png = sqnr_png(doc)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>edgebench localize</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}tr.verdict{background:#fdd}</style></head><body>",
        f"<h1>localize {html.escape(Path(doc['model']).name)}</h1>",
        f"<p>against {html.escape(doc['float'])}: {doc['cut_points']} cut points, "
        f"{doc['device_runs']['made']} device runs "
        f"(at most {doc['device_runs']['planned']} stated up front).</p>",
    ]
    if v:
        parts.append(
            f"<h2>Verdict: {html.escape(v['tensor'])}</h2>"
            f"<p>node {html.escape(v['node'])} ({html.escape(v['op'])}), "
            f"{html.escape(v['method'])}; {html.escape(v['metric'])} = {_cell(v['value'])}</p>"
        )
    else:
        parts.append("<h2>Verdict: none</h2>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in doc.get("notes") or []]
    if png:
        parts.append(
            f"<img alt='SQNR along depth' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        )
    parts.append(
        "<h2>Probes</h2><table><tr><th>cut</th><th>passed</th><th>metric</th><th>value</th><th>run</th></tr>"
    )
    for p in doc["probes"]:
        parts.append(
            "<tr>"
            + "".join(f"<td>{_cell(p[k])}</td>" for k in ("tensor", "passed", "metric", "value", "run_id"))
            + "</tr>"
        )
    parts.append(
        "</table><h2>Tensors</h2><table><tr>"
        + "".join(
            f"<th>{h}</th>"
            for h in ("depth", "tensor", "op", "SQNR dB", "host SQNR dB", "cosine", "max rel err", "source")
        )
        + "</tr>"
    )
    for t in doc["tensors"]:
        cls = " class='verdict'" if v and t["tensor"] == v["tensor"] else ""
        keys = ("depth", "tensor", "op", "sqnr_db", "host_sqnr_db", "cosine", "max_rel_err", "source")
        parts.append(f"<tr{cls}>" + "".join(f"<td>{_cell(t.get(k))}</td>" for k in keys) + "</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write(doc: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(doc))
