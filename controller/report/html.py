"""Self-contained HTML report of one run: a single file with every plot
embedded as a base64 PNG, so it can be mailed or attached to a CI job.

The plots come from the result alone (its ``series{}``), or, for the current
draw, from the run's raw meter trace when its run directory is at hand:
controller/report/timeline.py and power_plot.py draw them.

Over 400 lines because the page is one document: each section's HTML is
short, and there are many sections (placement, soak, power, validation...).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from agent.errors import one_line
from controller.report import latency_plot, load_plot, power_plot, timeline
from controller.report.terminal import VALIDATION_COLUMNS, num, status_text

# the per-op table stops here (a big graph has thousands of nodes)
MAX_NODE_ROWS = 500


def write_html(result: dict, run_dir: Path | None, out: Path) -> Path:
    """Write the report for ``result`` (an edgebench.result/v1 document) to
    ``out``. ``run_dir``: the run's files (fetched, or the agent's run
    directory), any of which may be missing; None for a result alone."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(result, run_dir), encoding="utf-8")
    return out


def render_html(result: dict, run_dir: Path | None = None) -> str:
    series, source = timeline.series_of(result, run_dir)
    parts = [_head(result), _overview(result)]
    latency = _latency_section(result, series, source)
    if latency:
        parts.append(latency)
    if result.get("validation"):
        parts.append(_validation_section(result["validation"]))
    if result.get("load"):
        parts.append(_load_section(result, series))
    soak = result.get("soak") or {}
    if soak:
        parts.append(_soak_section(soak))
    panels = timeline.panels(series, soak.get("windows") or [])
    png = timeline.timeline_png(panels, soak.get("throttle_events") or [])
    if png:
        alt = "throughput, temperatures, clocks and power against time"
        note = f"<p class=muted>{_e(timeline.resolution_note(series, source))}</p>"
        parts.append(_section("Timeline", _img(png, alt) + note))
    current = _current_section(result, run_dir)
    if current:
        parts.append(current)
    if result.get("power"):
        parts.append(_power_section(result["power"]))
    if result.get("placement"):
        parts.append(_placement_section(result["placement"]))
    if (result.get("telemetry") or {}).get("summary"):
        parts.append(_telemetry_section(result["telemetry"]))
    parts.append(_agent_section(result.get("agent") or {}))
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


# the percentile table's rows: (label, latency_ms key)
LATENCY_ROWS = (
    ("min", "min"),
    ("mean", "mean"),
    ("std", "std"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("p99.9", "p999"),
    ("max", "max"),
)


def _latency_section(result: dict, series: dict, source: str) -> str | None:
    """The full percentile table (as the terminal has it, plus init and first
    inference) and the CDF/histogram of every measured iteration."""
    lat = result.get("latency_ms") or {}
    png = latency_plot.latency_png(series, lat)
    if not lat and png is None:
        return None
    body = ""
    if lat:
        rows = [[_e(label), _num(lat.get(key), 3)] for label, key in LATENCY_ROWS]
        rows += [
            ["init (model load)", _num(result.get("init_ms"), 1)],
            ["first inference", _num(result.get("first_inference_ms"), 3)],
        ]
        body += _table(["", "ms"], rows, {1})
    if png is not None:
        n, _ = latency_plot.distribution(series) or (0, None)
        body += _img(png, "latency distribution: CDF and histogram of the measured iterations")
        note = f"{n} measured iterations; nearest-rank percentiles dashed. Series {source}."
        body += f"<p class=muted>{_e(note)}</p>"
    return _section("Latency", body)


def _load_section(result: dict, series: dict) -> str:
    """The load pattern: its figures, and the rate / misses / queue-delay plot
    (with a meter, current against time with bursts shaded)."""
    ld = result["load"]
    qd = ld.get("queue_delay_ms") or {}
    rows = [
        ("pattern", _e(f"{ld.get('pattern')} {ld.get('burst') or ''}".strip())),
        ("target rate", _num(ld.get("rate_hz"), 2, " /s")),
        ("achieved rate", _num(ld.get("achieved_rate_hz"), 2, " /s")),
        ("frames", _e(f"{ld.get('frames', 0):,}")),
        ("late / dropped", _e(f"{ld.get('late', 0):,} / {ld.get('dropped', 0):,} ({ld.get('late_policy')})")),
        ("miss rate", _num(100 * (ld.get("miss_rate") or 0), 2, " %")),
        ("deadline", _num(ld.get("deadline_ms"), 2, " ms")),
        ("queue delay p50 / p99", _e(f"{_num(qd.get('p50'))} / {_num(qd.get('p99'))} ms")),
        ("idle share", _num(100 * (ld.get("idle_share") or 0), 1, " %")),
    ]
    bursts = (result.get("power") or {}).get("bursts")
    if bursts:
        rows.append(("bursts", _e(bursts.get("summary"))))
    png = load_plot.load_png(series, (result.get("power") or {}).get("transients"))
    alt = "achieved rate against target, misses and queue delay against time"
    return _section("Load", _kv(rows) + (_img(png, alt) if png else ""))


def _validation_section(val: dict) -> str:
    """Per-output accuracy figures against the reference, and the gates on them."""
    outs = val.get("outputs") or []
    cols = [c for c in VALIDATION_COLUMNS if any(o.get(c[1]) is not None for o in outs)]
    passed = val.get("passed") if val.get("gates") else None
    verdict = {True: '<span class="good">passed</span>', False: '<span class="bad">FAILED</span>'}.get(
        passed, "no gates"
    )
    body = f"<p>{_e(val.get('samples'))} sample(s) on the device: {verdict}</p>"
    body += _table(
        ["output"] + [c[0] for c in cols],
        [[_e(o.get("name"))] + [_e(num(o.get(k), f)) for _, k, f in cols] for o in outs],
        set(range(1, len(cols) + 1)),
    )
    gates = val.get("gates") or []
    if gates:
        body += "<h3>Gates</h3>" + _table(
            ["gate", "output", "value", "threshold", "result"],
            [
                [
                    _e(g.get("name")),
                    _e(g.get("output")),
                    _e(num(g.get("value"), ".4g")),
                    _e(num(g.get("threshold"), "g")),
                    '<span class="good">pass</span>' if g.get("passed") else '<span class="bad">FAIL</span>',
                ]
                for g in gates
            ],
            {2, 3},
        )
    return _section("Validation", body)


def _current_section(result: dict, run_dir: Path | None) -> str | None:
    try:
        png = power_plot.power_plot_png(result, run_dir)
    except (OSError, ValueError, KeyError) as exc:  # a damaged capture must not cost the rest of the report
        return _section("Current draw", f"<p class=muted>power capture unreadable: {_e(one_line(exc))}</p>")
    if png is None:
        return None
    body = _img(png, "current against time")
    if power_plot.source(result, run_dir) == power_plot.SERIES:
        note = f"Drawn from the {power_plot.envelope_note(result)}; raw samples stay in the run's power.bin."
        body += f"<p class=muted>{_e(note)}</p>"
    return _section("Current draw", body)


# -- HTML ----------------------------------------------------------------------
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1100px;margin:0 auto;padding:1em 2em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f0f0f0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00020;font-weight:600} .good{color:#1b7a1b;font-weight:600}
.summary{font-size:1.1em;background:#fff;border-left:4px solid #555;padding:.5em 1em}
img{max-width:100%;background:#fff;border:1px solid #ddd}
.muted{color:#777}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _num(x: Any, nd: int = 2, unit: str = "") -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return "—"
    return f"{x:.{nd}f}{unit}"


def _table(headers: list[str], rows: list[list[str]], num_cols: set[int] | None = None) -> str:
    num_cols = num_cols or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in num_cols else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{body}</section>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _head(result: dict) -> str:
    model = (result.get("model") or {}).get("name") or "model"
    title = f"edgebench {result.get('kind') or 'run'} · {model} · {result.get('run_id') or ''}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head><body><main><h1>{_e(title)}</h1>"
    )


def _overview(result: dict) -> str:
    status, ok = status_text(result)
    gates = result.get("gates") or []
    cls = "good" if ok else "bad"
    lat = result.get("latency_ms") or {}
    agent = result.get("agent") or {}
    model = result.get("model") or {}
    rows = [
        (
            "status",
            f'<span class="{cls}">{_e(status)}</span>'
            + (f" — {_e(result['error'])}" if result.get("error") else ""),
        ),
        ("board", _e(agent.get("board") or agent.get("profile") or agent.get("hostname"))),
        ("model", f"{_e(model.get('name'))} <span class=muted>{_e((model.get('sha256') or '')[:12])}</span>"),
        ("throughput", _num(result.get("throughput_ips"), 2, " inferences/s")),
        ("latency p50 / p99", f"{_num(lat.get('p50'), 3)} / {_num(lat.get('p99'), 3)} ms"),
        ("iterations", _e(result.get("iterations"))),
        ("duration", _num(result.get("duration_s"), 1, " s")),
    ]
    body = _kv(rows)
    if gates:
        body += "<h3>Gates</h3>" + _table(
            ["gate", "result", "message"],
            [
                [
                    _e(g.get("name")),
                    '<span class="good">pass</span>' if g.get("passed") else '<span class="bad">FAIL</span>',
                    _e(g.get("message")),
                ]
                for g in gates
            ],
        )
    return _section("Overview", body)


def _soak_section(soak: dict) -> str:
    verdict = soak.get("verdict") or "—"
    cls = "good" if verdict == "stable" else "bad"
    steady = soak.get("steady_state") or {}
    rows = [
        ("verdict", f'<span class="{cls}">{_e(verdict)}</span>'),
        ("cold throughput", _num(soak.get("cold_throughput_ips"), 2, " inferences/s")),
        ("sustained throughput", _num(soak.get("sustained_throughput_ips"), 2, " inferences/s")),
        ("sustained / cold", _num(soak.get("sustained_ratio"), 3)),
        ("stability (worst / best window)", _num(soak.get("stability"), 3)),
        (
            "time to throttle",
            _num(soak.get("time_to_throttle_s"), 1, " s")
            if soak.get("time_to_throttle_s") is not None
            else "never",
        ),
        (
            "steady state",
            f"from {_num(steady.get('t_s'), 0, ' s')} at {_num(steady.get('throughput_ips'), 2)} inferences/s"
            if steady.get("reached")
            else "not reached",
        ),
        ("window", _num(soak.get("window_s"), 1, " s") + f" × {len(soak.get('windows') or [])}"),
        ("ambient", _num(soak.get("ambient_c"), 1, " °C")),
        ("enclosure", _e(soak.get("enclosure") or "—")),
    ]
    if soak.get("target_ips") is not None:
        ok = soak.get("target_met")
        rows.append(
            (
                "target",
                f"{_num(soak['target_ips'], 2)} inferences/s: "
                + ('<span class="good">met</span>' if ok else '<span class="bad">missed</span>'),
            )
        )
    body = f'<p class="summary">{_e(soak.get("summary") or "")}</p>' + _kv(rows)
    events = soak.get("throttle_events") or []
    if events:
        body += "<h3>Throttle events</h3>" + _table(
            ["t (s)", "domain", "from (MHz)", "to (MHz)", "hottest zone", "temp (°C)"],
            [
                [
                    _num(e["t_s"], 1),
                    _e(e["domain"]),
                    _num(e["from_hz"] / 1e6, 0),
                    _num(e["to_hz"] / 1e6, 0),
                    _e(e.get("zone")),
                    _num(e.get("temp_c"), 1),
                ]
                for e in events[:200]
            ],
            {0, 2, 3, 5},
        )
    return _section("Soak", body)


def _power_section(p: dict) -> str:
    rows = [
        ("source", _e(p.get("source"))),
        ("mean / peak current", f"{_num(p.get('mean_a'), 3)} / {_num(p.get('peak_a'), 3)} A"),
        ("mean / peak power", f"{_num(p.get('mean_w'), 2)} / {_num(p.get('peak_w'), 2)} W"),
        (
            "energy per inference",
            _num((p.get("energy_per_inference_j") or 0) * 1e3, 3, " mJ")
            if p.get("energy_per_inference_j") is not None
            else "—",
        ),
        ("samples (dropped)", f"{_e(p.get('samples'))} ({_e(p.get('dropped_samples'))})"),
        ("transients", _e(len(p.get("transients") or []))),
    ]
    if p.get("budget_w") is not None:
        rows.append(
            (
                "budget",
                _num(p["budget_w"], 1, " W")
                + (' <span class="bad">exceeded</span>' if p.get("over_budget") else ""),
            )
        )
    return _section("Power", _kv(rows))


def _placement_section(p: dict) -> str:
    by_dev = p.get("nodes_by_device") or {}
    fb = bool(p.get("fallback"))
    rows = [
        ("runtime", _e(p.get("runtime"))),
        (
            "nodes",
            f"{_e(p.get('total_nodes'))} ({', '.join(f'{_e(k)}: {_e(v)}' for k, v in by_dev.items())})",
        ),
        ("accelerated nodes", _e(p.get("accelerated_nodes"))),
        ("partitions", _e(p.get("partitions"))),
        (
            "CPU time share",
            _num((p.get("cpu_time_share") or 0) * 100, 1, " %")
            if p.get("cpu_time_share") is not None
            else "—",
        ),
        ("fallback", '<span class="bad">yes</span>' if fb else '<span class="good">no</span>'),
    ]
    # why the accelerator did not take the graph, as the terminal says it ("CUDA EP not in this build")
    if p.get("dropped_providers"):
        rows.append(("dropped providers", _e(", ".join(map(str, p["dropped_providers"])))))
    reasons = p.get("fallback_reasons") or []
    if reasons:
        rows.append(("why", "<br>".join(f'<span class="bad">{_e(r)}</span>' for r in reasons)))
    body = _kv(rows)
    nodes = p.get("fallback_nodes") or []
    if nodes:
        body += "<h3>Fallback nodes</h3>" + _table(
            ["node", "op", "device", "time share"],
            [
                [
                    _e(n.get("name")),
                    _e(n.get("op_type")),
                    _e(n.get("device")),
                    _num((n.get("time_share") or 0) * 100, 1, " %"),
                ]
                for n in nodes
            ],
            {3},
        )
    all_nodes = p.get("nodes") or []
    if all_nodes:
        fb_names = {n.get("name") for n in nodes}
        rows = []
        for i, n in enumerate(all_nodes[:MAX_NODE_ROWS]):
            part = n.get("subgraph") or (
                f"delegate {n['partition']}" if n.get("partition") is not None else ""
            )
            dev = _e(n.get("device"))
            rows.append(
                [str(i), _e(n.get("name")), _e(n.get("op_type")),
                 f'<span class="bad">{dev}</span>' if n.get("name") in fb_names else dev,
                 _num((n.get("time_share") or 0) * 100, 1, " %") if n.get("time_share") is not None else "—",
                 _e(part)]
            )  # fmt: skip
        more = len(all_nodes) - MAX_NODE_ROWS
        body += "<h3>Per-op placement</h3>" + _table(
            ["#", "node", "op", "device", "time share", "partition"], rows, {0, 4}
        )
        if more > 0:
            body += f"<p class=muted>… {more} more node(s)</p>"
    return _section("Placement", body)


def _telemetry_section(t: dict) -> str:
    summ = t.get("summary") or {}
    rows = []
    for z, v in sorted((summ.get("temps_c") or {}).items()):
        rows.append([_e(z), "°C", _num(v.get("min"), 1), _num(v.get("mean"), 1), _num(v.get("max"), 1)])
    for d, v in sorted((summ.get("clocks_hz") or {}).items()):
        rows.append(
            [_e(d), "MHz", _num((v.get("min") or 0) / 1e6, 0), "—", _num((v.get("max") or 0) / 1e6, 0)]
        )
    for r, v in sorted((summ.get("rails_w") or {}).items()):
        rows.append([_e(r), "W", "—", _num(v.get("mean"), 2), _num(v.get("max"), 2)])
    src = ", ".join(map(str, t.get("sources") or []))
    body = f"<p class=muted>sources: {_e(src)}; {_num(t.get('rate_hz'), 1)} Hz</p>"
    return _section("Telemetry", body + _table(["sensor", "unit", "min", "mean", "max"], rows, {2, 3, 4}))


def _agent_section(a: dict) -> str:
    keep = ("hostname", "profile", "board", "soc", "kernel", "python", "l4t", "jetpack")
    rows = [(k, _e(a[k])) for k in keep if a.get(k)]
    rt = a.get("runtimes")
    if rt:
        rows.append(("runtimes", f"<code>{_e(json.dumps(rt, sort_keys=True))}</code>"))
    return _section("Agent", _kv(rows) if rows else "<p class=muted>no fingerprint recorded</p>")
