"""A figure over time for one model on one board, with regressions flagged.

A run is a regression when it is significantly slower than the previous
comparable run: same model (sha256), same kind, same board, both completed.
"Significantly" is `edgebench compare`'s test: the bootstrap interval of the
median-latency ratio (controller/report/compare.speedup on the stored
latency quantiles, with its run-to-run noise term) lies wholly below 1, and
the slowdown exceeds ``min_pct``. Runs without stored quantiles are shown
but never flagged (no interval: nothing to call significant)."""

from __future__ import annotations

import json
from typing import Any

from controller.report import compare

# the figures the runs table holds; any other metric is a dotted path into the result
COLUMNS = ("throughput_ips", "p50_ms", "p99_ms")


def value(row: dict, doc: dict | None, metric: str) -> float | None:
    if metric in COLUMNS:
        v = row.get(metric)
    else:
        v = doc
        for part in metric.split("."):
            v = v.get(part) if isinstance(v, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def load_key(doc: dict) -> tuple:
    """The load pattern a run ran under: ("back-to-back",) or its pattern and rates."""
    load = doc.get("load") or {}
    if not load or load.get("pattern") in (None, "asap", "back-to-back"):
        return ("back-to-back",)
    return (str(load.get("pattern")), load.get("rate_hz"), load.get("burst"), load.get("deadline_ms"))


def analyse(rows: list[dict], metric: str = "throughput_ips", min_pct: float = 0.0) -> list[dict]:
    """Points oldest first: {run_id, created, value, status, model_sha256,
    regression (bool), vs (the previous comparable run), slowdown_pct, ratio,
    low, high}."""
    points: list[dict] = []
    last: dict[tuple, tuple[dict, dict]] = {}  # comparable key -> (point, doc) of the newest so far
    for row in rows:
        doc = json.loads(row["result_json"]) if row.get("result_json") else {}
        p: dict[str, Any] = {
            "run_id": row["run_id"],
            "created": row["created"],
            "value": value(row, doc, metric),
            "status": row["status"],
            "model_sha256": row["model_sha256"],
            "board": row.get("board") or row.get("agent"),
            "regression": False,
            "vs": None,
        }
        # like with like: a rate-driven run's latency runs from the scheduled
        # arrival, so it is never compared with a flat-out run of the model
        key = (row["model_sha256"], row["kind"], p["board"], load_key(doc))
        p["load"] = load_key(doc)[0]
        if row["status"] == "completed":
            prev = last.get(key)
            if prev is not None:
                s = compare.speedup(prev[1], doc, compare.latencies(prev[1]), compare.latencies(doc))
                p.update(vs=prev[0]["run_id"], ratio=s["ratio"], low=s["low"], high=s["high"])
                p["slowdown_pct"] = s.get("slowdown_pct")
                p["regression"] = bool(
                    s.get("significant") and s["high"] < 1 and (s.get("slowdown_pct") or 0) > min_pct
                )
            last[key] = (p, doc)
        points.append(p)
    if metric not in COLUMNS and rows and all(p["value"] is None for p in points):
        from agent.errors import BadInput

        raise BadInput(
            f"no stored run has a number at --metric {metric!r}: give throughput_ips, p50_ms, p99_ms "
            "or a dotted path into the result, e.g. soak.sustained_throughput_ips"
        )
    return points


def render(points: list[dict], metric: str) -> str:
    import datetime as dt

    lines = [f"{'run_id':<30} {'created':<19} {metric:>16}  vs previous"]
    for p in points:
        t = dt.datetime.fromtimestamp(p["created"]).strftime("%Y-%m-%d %H:%M:%S") if p["created"] else "-"
        v = f"{p['value']:.4g}" if p["value"] is not None else "-"
        note = ""
        if p.get("vs"):
            lo, hi = p.get("low"), p.get("high")
            ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
            note = f"speedup {p['ratio']:.3f}x{ci}" if p.get("ratio") is not None else ""
        if p["regression"]:
            note = f"REGRESSION {p['slowdown_pct']:.1f}% slower than {p['vs']} ({note})"
        elif p["status"] != "completed":
            note = p["status"]
        lines.append(f"{p['run_id']:<30} {t:<19} {v:>16}  {note}")
    return "\n".join(lines)


def plot_png(series: dict[str, list[dict]], metric: str, title: str = "") -> bytes | None:
    """One line per series (label -> points), regressions marked; None without points."""
    if not any(p["value"] is not None for pts in series.values() for p in pts):
        return None
    import datetime as dt
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=90)
    for label, pts in series.items():
        pts = [p for p in pts if p["value"] is not None]
        xs = [dt.datetime.fromtimestamp(p["created"]) for p in pts]
        ax.plot(xs, [p["value"] for p in pts], marker="o", ms=3, label=label)
        bad = [p for p in pts if p["regression"]]
        if bad:
            ax.scatter([dt.datetime.fromtimestamp(p["created"]) for p in bad], [p["value"] for p in bad],
                       color="red", zorder=3, s=40, label=f"{label}: regression")  # fmt: skip
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
