"""edgebench history: a model's figure over time on a board, from the
results DB, with runs significantly slower than the previous comparable run
flagged (controller/report/history.py). Exit 3 when the newest run is a
flagged regression, so CI can gate on it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from controller.commands.common import add_db_option, open_db


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("history", help="a model's figure over time on a board; regressions flagged")
    p.add_argument("--model", required=True, metavar="SHA|NAME", help="model name or sha256 prefix")
    p.add_argument(
        "--board", default=None, metavar="NAME", help="fleet board name or agent (address/hostname)"
    )
    p.add_argument(
        "--metric", default="throughput_ips", help="throughput_ips, p50_ms, p99_ms or a result path"
    )
    p.add_argument("--kind", default=None, help="bench, soak, ... (default: all)")
    p.add_argument("--limit", type=int, default=100, help="the newest N runs (default 100)")
    p.add_argument("--min-pct", type=float, default=0.0, help="flag only slowdowns over this percent")
    p.add_argument("--json", metavar="FILE", default=None)
    p.add_argument("--html", metavar="FILE", default=None, help="write the history plot as an HTML page")
    add_db_option(p)
    return p


def run(args: argparse.Namespace) -> int:
    from controller.report import history

    db = open_db(args)
    try:
        rows = db.history(args.model, args.board, args.kind, args.limit)
    finally:
        db.close()
    if not rows:
        where = f" on {args.board}" if args.board else ""
        raise BadInput(f"no stored runs of {args.model}{where}")
    points = history.analyse(rows, args.metric, args.min_pct)
    print(history.render(points, args.metric))
    flagged = [p for p in points if p["regression"]]
    print(f"{len(points)} run(s), {len(flagged)} regression(s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"metric": args.metric, "points": points}, indent=1))
    if args.html:
        import base64
        import html

        png = history.plot_png(
            {args.model: points}, args.metric, f"{args.model} on {args.board or 'any board'}"
        )
        img = (
            f'<img alt="history" src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else ""
        )
        page = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>history</title></head><body>"
        page += f"<h1>{html.escape(args.model)}: {html.escape(args.metric)}</h1>{img}"
        page += f"<pre>{html.escape(history.render(points, args.metric))}</pre></body></html>"
        Path(args.html).write_text(page)
    return 3 if points[-1]["regression"] else 0
