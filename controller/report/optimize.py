"""The optimize report: the original against its optimized variant, measured
on the board (size, p50/p99 and the speedup with its confidence interval,
accuracy, placement, energy), as text, Markdown and one HTML page."""

from __future__ import annotations

import html
from pathlib import Path

from controller.report.cells import num
from controller.report.compare import compare
from controller.report.compare_text import speedup_text

# the accuracy figures shown, in this order, where an output has them
ACCURACY = ("cosine", "sqnr_db", "top1_agreement", "mask_iou", "box_recall")


def _placement(r: dict) -> str:
    p = r.get("placement") or {}
    if not p:
        return "-"
    by = ", ".join(f"{k} {v}" for k, v in sorted((p.get("nodes_by_device") or {}).items()))
    share = p.get("cpu_time_share")
    cpu = f", CPU time {share:.0%}" if isinstance(share, (int, float)) else ""
    return f"{p.get('total_nodes', '-')} nodes ({by}){cpu}{', FALLBACK' if p.get('fallback') else ''}"


def build(
    pipeline: str, a: Path, b: Path, quantize: dict | None, runs: dict[str, dict], target: str | None
) -> dict:
    ba, bb = runs["bench_original"], runs["bench_optimized"]
    va, vb = runs["validate_original"], runs["validate_optimized"]
    c = compare(ba, bb)
    acc = []
    outs_a = {o["name"]: o for o in (va.get("validation") or {}).get("outputs") or []}
    for o in (vb.get("validation") or {}).get("outputs") or []:
        for m in ACCURACY:
            if o.get(m) is not None:
                before = (outs_a.get(o["name"]) or {}).get(m)
                acc.append({"output": o["name"], "metric": m, "original": before, "optimized": o[m]})
    failed = [g["message"] for g in (vb.get("gates") or []) if not g.get("passed", True)]
    acc += task_accuracy(va, vb)
    if quantize and quantize.get("target") and not quantize.get("met"):
        failed.append(f"target {quantize['target']} not met")
    return {
        "schema": "edgebench.optimize/v1",
        "pipeline": pipeline,
        "original": {"model": str(a), "bench": ba.get("run_id"), "validate": va.get("run_id")},
        "optimized": {"model": str(b), "bench": bb.get("run_id"), "validate": vb.get("run_id")},
        "quantize": quantize,
        "target": target,
        "compare": c,
        "accuracy": acc,
        "placement": {"original": _placement(ba), "optimized": _placement(bb)},
        "energy_per_inference_j": {
            "original": (ba.get("power") or {}).get("energy_per_inference_j"),
            "optimized": (bb.get("power") or {}).get("energy_per_inference_j"),
        },
        "failed": failed,
        "latency_quantiles": {
            tag: ((r.get("series") or {}).get("latency_ms") or {}).get("quantiles") or []
            for tag, r in (("original", ba), ("optimized", bb))
        },
    }


def task_accuracy(va: dict, vb: dict) -> list[dict]:
    """mAP/AP50 (detectors) or top-1 (classifiers) before and after, against the labels
    when given (else agreement with the reference's boxes), with the loss."""
    out = []
    da, db = ((v.get("validation") or {}) for v in (va, vb))
    for name, d in (db.get("detection") or {}).items():
        a = (da.get("detection") or {}).get(name) or {}
        truth = "map50" in d
        for m in ("map50", "map"):
            before = a.get(m) if truth else (a.get("agreement") or {}).get(m)
            after = d.get(m) if truth else (d.get("agreement") or {}).get(m)
            label = ("AP50" if m == "map50" else "mAP") + (" vs labels" if truth else " vs reference")
            out.append(
                {
                    "output": name,
                    "metric": label,
                    "original": before,
                    "optimized": after,
                    "loss": None if before is None or after is None else before - after,
                }
            )
    for name, d in (db.get("accuracy") or {}).items():
        before = ((da.get("accuracy") or {}).get(name) or {}).get("top1")
        out.append(
            {
                "output": name,
                "metric": "top-1 accuracy vs labels",
                "original": before,
                "optimized": d["top1"],
                "loss": None if before is None else before - d["top1"],
            }
        )
    return out


def rows(rep: dict) -> list[tuple[str, str, str, str]]:
    """(row, original, optimized, change) for every table."""
    c = rep["compare"]
    s = c.get("speedup") or {}
    size = c.get("size_bytes") or {}
    lat = c.get("latency_ms") or {}
    out = [
        (
            "size",
            f"{num(size.get('a'), ',.0f')} B",
            f"{num(size.get('b'), ',.0f')} B",
            f"{num(size.get('ratio'), '.2f')}x smaller",
        ),
    ]
    for q in ("p50", "p99"):
        d = lat.get(q) or {}
        out.append(
            (
                f"{q} latency",
                f"{num(d.get('a'))} ms",
                f"{num(d.get('b'))} ms",
                f"{num(d.get('pct'), '+.1f')}%",
            )
        )
    out.append(("speedup (median A/B, 95% CI)", "", "", speedup_text(s)))
    for a in rep["accuracy"]:
        loss = f"loss {num(a['loss'], '.4f')}" if a.get("loss") is not None else ""
        out.append(
            (f"{a['metric']} ({a['output']})", num(a["original"], ".4f"), num(a["optimized"], ".4f"), loss)
        )
    out.append(("placement", rep["placement"]["original"], rep["placement"]["optimized"], ""))
    e = rep["energy_per_inference_j"]
    if e["original"] is not None or e["optimized"] is not None:
        out.append(
            ("energy / inference", f"{num(e['original'], '.4g')} J", f"{num(e['optimized'], '.4g')} J", "")
        )
    return out


def render(rep: dict) -> str:
    r = rows(rep)
    w = [max(len(x[i]) for x in [("", "original", "optimized", "change"), *r]) for i in range(4)]
    line = lambda x: "  ".join(f"{v:<{w[i]}}" for i, v in enumerate(x)).rstrip()  # noqa: E731
    lines = [
        f"optimize {rep['pipeline']}: {rep['original']['model']} -> {rep['optimized']['model']}",
        line(("", "original", "optimized", "change")),
        *[line(x) for x in r],
    ]
    q = rep.get("quantize") or {}
    if q.get("float_nodes"):
        lines.append(f"kept in float for {q.get('target')}: {', '.join(q['float_nodes'])}")
    lines += [f"warning: {x}" for x in rep["compare"].get("warnings") or []]
    lines += [f"FAIL: {x}" for x in rep["failed"]] or ["all gates passed"]
    return "\n".join(lines)


def markdown(rep: dict) -> str:
    out = [
        f"# edgebench optimize {rep['pipeline']}",
        "",
        "| | original | optimized | change |",
        "|---|---|---|---|",
    ]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(rep)]
    out += ["", *[f"- FAIL: {x}" for x in rep["failed"]]] if rep["failed"] else ["", "All gates passed."]
    return "\n".join(out) + "\n"


def html_page(rep: dict) -> str:
    e = html.escape
    body = "".join(
        f"<tr><th>{e(a)}</th><td>{e(b)}</td><td>{e(c)}</td><td>{e(d)}</td></tr>" for a, b, c, d in rows(rep)
    )
    verdict = (
        "".join(f"<p class=bad>FAIL: {e(x)}</p>" for x in rep["failed"])
        or "<p class=good>All gates passed.</p>"
    )
    import base64

    from controller.report.optimize_plots import latency_overlay_png

    png = latency_overlay_png(rep.get("latency_quantiles") or {})
    img = (
        "<h2>latency, both variants</h2><img alt='latency distributions overlaid' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        if png
        else ""
    )
    for p in rep.get("pictures") or []:
        img += (
            f"<h3>{e(p['output'])}, sample {p['sample']} (AP50 {num(p['ap50'], '.3f')}): "
            "reference (green) | device (red)</h3>"
            f"<img alt='boxes, sample {p['sample']}' src='data:image/png;base64,{p['png']}'>"
        )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>edgebench optimize</title><style>"
        "body{font:14px system-ui;margin:2em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}"
        "table{border-collapse:collapse}.bad{color:#b00020;font-weight:600}.good{color:#1b7a1b}</style></head><body>"
        f"<h1>edgebench optimize {e(rep['pipeline'])}</h1>"
        f"<p>{e(rep['original']['model'])} &rarr; {e(rep['optimized']['model'])}, measured on the board</p>"
        f"<table><tr><th></th><th>original</th><th>optimized</th><th>change</th></tr>{body}</table>{verdict}{img}"
        "</body></html>\n"
    )
