"""edgebench runs: results in the DB (or, with --agent, the agent's run list)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from agent.names import KINDS
from agent.runs.registry import ACTIVE, FINAL
from controller.commands.common import add_agent_options, add_db_option, connect, open_db
from controller.runopts import positive_int


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("runs", help="list stored results (or an agent's runs with --agent)")
    add_agent_options(p)
    add_db_option(p)
    p.add_argument("--limit", type=positive_int, default=20, help="newest N (default 20)")
    p.add_argument("--model", default=None, help="model name or sha256 prefix")
    p.add_argument("--kind", default=None, choices=KINDS)
    p.add_argument("--status", default=None, choices=ACTIVE + FINAL)
    return p


def matches(rec: dict, model: str | None, kind: str | None, status: str | None) -> bool:
    """An agent's run record against the filters, as the results DB applies
    them (ResultsDB.query): model by name or sha256 prefix, kind, status."""
    spec = rec.get("spec") or {}
    if (
        model
        and spec.get("model_name") != model
        and not str(spec.get("model_sha256") or "").startswith(model)
    ):
        return False
    if kind and (rec.get("kind") or spec.get("kind")) != kind:
        return False
    return not status or rec.get("status") == status


def _ts(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _n(x: Any, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "-"


def run(args: argparse.Namespace) -> int:
    if args.agent:
        filtered = bool(args.model or args.kind or args.status)
        with connect(args) as client:
            # the agent pages newest first; with a filter every page is read, then cut
            recs = client.list_runs(0 if filtered else args.limit)
        recs = [r for r in recs if matches(r, args.model, args.kind, args.status)][: args.limit]
        for r in recs:
            print(f"{r['run_id']}  {r['kind']:<9} {r['status']:<11} {_ts(r['created_unix'])}")
        return 0
    # without sqlalchemy there is no DB to list; an agent's own list needs none
    db = open_db(args, "edgebench runs without --agent ADDR (the results DB)")
    try:
        rows = db.query(limit=args.limit, model=args.model, kind=args.kind, status=args.status)
    finally:
        db.close()
    print(
        f"{'run_id':<30} {'kind':<9} {'status':<10} {'agent':<21} {'model':<20} {'inf/s':>9} {'p50 ms':>8} {'p99 ms':>8} fallback"  # noqa: E501
    )
    for r in rows:
        fb = "-" if r["fallback"] is None else ("YES" if r["fallback"] else "no")
        print(
            f"{r['run_id']:<30} {r['kind'] or '-':<9} {r['status'] or '-':<10} {(r['agent'] or '-')[:21]:<21}"
            f" {(r['model_name'] or '-')[:20]:<20}"
            f" {_n(r['throughput_ips'], '.1f'):>9} {_n(r['p50_ms'], '.3f'):>8} {_n(r['p99_ms'], '.3f'):>8} {fb}"  # noqa: E501
        )
    return 0
