"""What a team reads after a plan: one matrix of model variant x board with
the headline figure and pass/fail per gate (terminal, Markdown, HTML), a
section per board with its plots (HTML), and JUnit with one testcase per
(job, board, gate) so CI names each failure.

Items come from FleetStore.results(): {job, board, model, kind, status,
reason, run_id, gates[], result|None, bytes_pushed, ...}."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

# the headline figure per kind: (label, path in the result, format)
HEADLINES: list[tuple[str, tuple[str, ...], str]] = [
    ("throughput", ("throughput_ips",), "{:.1f} inf/s"),
    ("sustained", ("soak", "sustained_ratio"), "x{:.2f}"),
    ("miss rate", ("load", "miss_rate"), "{:.1%}"),
    ("accuracy", ("validation", "passed"), "{}"),
    ("energy", ("power", "energy_per_inference_j"), "{:.4f} J/inf"),
]


def _get(d: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    return d


def gate_figure(g: dict) -> str:
    """A validate gate as its value against its threshold (``mask_iou 0.83 >= 0.8``,
    ``nmse 0.3 > 0.1`` when it failed); "" for a gate without both."""
    from agent.spec import GATES as VALIDATE_GATES

    if not g.get("metric") or g["name"] not in VALIDATE_GATES:
        return ""
    v, t = g.get("value"), g.get("limit")
    if not isinstance(t, (int, float)):
        return ""
    higher = VALIDATE_GATES[g["name"]][1]
    if not isinstance(v, (int, float)):
        return f"{g['metric']} n/a {'>=' if higher else '<='} {t:g}"
    op = (">=" if higher else "<=") if g["passed"] else ("<" if higher else ">")
    return f"{g['metric']} {v:.3g} {op} {t:g}"


def headline(item: dict) -> str:
    """The figures a cell shows: those the result has, and each validate gate's
    value against its threshold, joined."""
    res = item.get("result") or {}
    parts = []
    for label, path, fmt in HEADLINES:
        v = _get(res, path)
        if v is None:
            continue
        if label == "accuracy":
            parts.append("accuracy " + ("pass" if v else "FAIL"))
        else:
            parts.append(fmt.format(v))
    parts += [t for t in (gate_figure(g) for g in item.get("gates") or []) if t]
    return " · ".join(parts)


def verdict(item: dict) -> str:
    return {"passed": "PASS", "gate_failed": "FAIL", "skipped": "SKIP"}.get(
        item["status"], item["status"].upper()
    )


def matrix(items: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    """(rows = job/model variants, columns = boards, cells)."""
    rows = sorted({f"{i['job']}/{Path(i['model']).name}" for i in items})
    cols = sorted({i["board"] for i in items})
    cells = {(f"{i['job']}/{Path(i['model']).name}", i["board"]): i for i in items}
    return rows, cols, cells


def cell_text(item: dict | None) -> str:
    if item is None:
        return "-"
    text = f"{verdict(item)} {headline(item)}".strip()
    failed = [g["name"] for g in item.get("gates") or [] if not g["passed"]]
    if failed:
        text += f" [{', '.join(failed)}]"
    elif item["status"] not in ("passed",) and item.get("reason"):
        text += f" ({item['reason']})"
    return text


def counts(items: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i["status"]] = out.get(i["status"], 0) + 1
    return out


def summary_line(plan_id: str, items: list[dict]) -> str:
    c = counts(items)
    return f"plan {plan_id}: {len(items)} item(s): " + ", ".join(f"{v} {k}" for k, v in sorted(c.items()))


def terminal(plan_id: str, items: list[dict]) -> str:
    lines = [summary_line(plan_id, items)]
    for i in items:
        lines.append(
            f"  {i['job']:<16} {Path(i['model']).name:<20} {i['board']:<14} {verdict(i):<11} "
            f"{i['run_id'] or '-':<30} {headline(i)}" + (f"  ({i['reason']})" if i.get("reason") else "")
        )
    return "\n".join(lines)


def markdown(plan_id: str, items: list[dict]) -> str:
    rows, cols, cells = matrix(items)
    out = [f"# edgebench fleet plan {plan_id}", "", summary_line(plan_id, items), ""]
    out.append("| variant | " + " | ".join(cols) + " |")
    out.append("| --- |" + " --- |" * len(cols))
    for r in rows:
        out.append(
            f"| {r} | " + " | ".join(cell_text(cells.get((r, c))).replace("|", "/") for c in cols) + " |"
        )
    out += [
        "",
        "## Gates",
        "",
        "| job | model | board | gate | result | detail |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i in items:
        for g in i.get("gates") or []:
            res = "skipped" if g.get("skipped") else "pass" if g["passed"] else "FAIL"
            out.append(
                f"| {i['job']} | {Path(i['model']).name} | {i['board']} | {g['name']} | {res} "
                f"| {g['message']} |"
            )
    return "\n".join(out) + "\n"


def junit(plan_id: str, items: list[dict]) -> str:
    """One testsuite per job; a testcase per (job, board, gate), named
    ``board.gate`` (``board.model.gate`` when the job has several models),
    plus a ``board.run`` case for an item that ran no gate or did not finish."""
    root = ET.Element("testsuites", name=f"edgebench.fleet.{plan_id}")
    jobs: dict[str, list[dict]] = {}
    for i in items:
        jobs.setdefault(i["job"], []).append(i)
    total = total_fail = 0
    for job, its in jobs.items():
        suite = ET.SubElement(root, "testsuite", name=f"edgebench.fleet.{job}")
        multi = len({i["model"] for i in its}) > 1
        tests = fails = skips = 0
        for i in its:
            prefix = f"{i['board']}.{Path(i['model']).name}" if multi else i["board"]
            cases = list(i.get("gates") or [])
            if i["status"] not in ("passed", "gate_failed") or not cases:
                run = {
                    "name": "run",
                    "passed": i["status"] in ("passed", "skipped"),
                    "skipped": i["status"] == "skipped",
                    "message": i.get("reason") or i["status"],
                }
                cases = [run, *cases]
            for g in cases:
                tc = ET.SubElement(
                    suite, "testcase", classname=f"edgebench.fleet.{job}", name=f"{prefix}.{g['name']}"
                )
                tests += 1
                if g.get("skipped"):
                    skips += 1
                    ET.SubElement(tc, "skipped", message=str(g.get("message") or ""))
                elif not g["passed"]:
                    fails += 1
                    ET.SubElement(tc, "failure", message=str(g.get("message") or "failed"))
                fig = gate_figure(g)
                if fig:  # a passing validate gate says its value too
                    ET.SubElement(tc, "system-out").text = fig
        suite.set("tests", str(tests))
        suite.set("failures", str(fails))
        suite.set("skipped", str(skips))
        total += tests
        total_fail += fails
    root.set("tests", str(total))
    root.set("failures", str(total_fail))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.PASS{background:#e6f4e6}.FAIL,.FAILED,.DROPPED,.UNREACHABLE{background:#fbe3e3}.SKIP{background:#f2f2f2}
img{max-width:100%}"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def render_html(plan_id: str, items: list[dict], history: dict[str, bytes] | None = None) -> str:
    """The page; ``history``: board -> its history plot (history_plots())."""
    rows, cols, cells = matrix(items)
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>edgebench fleet {_e(plan_id)}</title>"
        f"<style>{_CSS}</style></head><body><h1>edgebench fleet plan {_e(plan_id)}</h1>",
        f"<p>{_e(summary_line(plan_id, items))}</p><h2>Matrix</h2><table><tr><th>variant</th>",
        "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>",
    ]
    for r in rows:
        out.append(f"<tr><th>{_e(r)}</th>")
        for c in cols:
            it = cells.get((r, c))
            cls = verdict(it) if it else ""
            out.append(f'<td class="{_e(cls)}">{_e(cell_text(it))}</td>')
        out.append("</tr>")
    out.append("</table>")
    for b in cols:
        mine = [i for i in items if i["board"] == b]
        out.append(f"<section><h2>{_e(b)}</h2><table><tr><th>job</th><th>model</th><th>status</th><th>run</th>"
                   "<th>figures</th><th>gates</th></tr>")  # fmt: skip
        for i in mine:
            gates = "; ".join(
                f"{g['name']}: {'pass' if g['passed'] else 'FAIL'}"
                + (f" ({gate_figure(g)})" if gate_figure(g) else "")
                for g in i.get("gates") or []
            )
            out.append(
                f'<tr><td>{_e(i["job"])}</td><td>{_e(Path(i["model"]).name)}</td><td class="{verdict(i)}">'
                f"{_e(verdict(i))}{(' — ' + _e(i['reason'])) if i.get('reason') else ''}</td>"
                f"<td>{_e(i['run_id'])}</td>"
                f"<td>{_e(headline(i))}</td><td>{_e(gates)}</td></tr>"
            )
        out.append("</table>")
        if history and history.get(b):
            out.append("<h3>History</h3>" + _img(history[b]))
        for i in mine:
            png = _timeline(i.get("result"))
            if png:
                out.append(f"<h3>{_e(i['job'])} · {_e(Path(i['model']).name)}</h3>" + _img(png))
        out.append("</section>")
    out.append("</body></html>")
    return "".join(out)


def history_plots(db: Any, items: list[dict], limit: int = 100) -> dict[str, bytes]:
    """Per board: the throughput of each model variant the plan ran there, over
    the stored history (regressions marked)."""
    from controller.report import history

    out = {}
    for b in sorted({i["board"] for i in items}):
        series = {}
        for i in items:
            sha = ((i.get("result") or {}).get("model") or {}).get("sha256")
            if i["board"] == b and sha:
                rows = db.history(sha, b, limit=limit)
                series[f"{i['job']}/{Path(i['model']).name}"] = history.analyse(rows)
        png = history.plot_png(series, "throughput_ips", f"{b}: throughput over time") if series else None
        if png:
            out[b] = png
    return out


def _img(png: bytes) -> str:
    import base64

    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _timeline(result: dict | None) -> bytes | None:
    """The run's timeline (throughput, temperatures, clocks, power) from the
    series stored with its result; None when it has none."""
    if not result or not result.get("series"):
        return None
    from controller.report import timeline

    try:
        data = timeline.collect_series(result, None)
        return timeline.timeline_png(data, (result.get("soak") or {}).get("throttle_events") or [])
    except Exception:  # a plot is decoration: a damaged series leaves it out, never the report
        return None
