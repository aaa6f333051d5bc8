"""edgebench fleet: one plan over a shelf of boards (docs/fleet.md).

fleet status --inventory boards.yaml
fleet run PLAN.yaml [--json F]
fleet resume PLAN_ID
fleet results PLAN_ID [--json F]
fleet report PLAN_ID --html F --md F --junit F
fleet prometheus-targets --inventory boards.yaml --out targets.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from controller.commands.common import add_db_option, open_db
from controller.runopts import seconds


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("fleet", help="one plan over many boards: status, run, resume, results, report")
    sub = p.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND", parser_class=type(p))
    sub.required = True

    s = sub.add_parser(
        "status", help="every board of an inventory: reachable, profile, runtimes, run, temperature"
    )
    s.add_argument("--inventory", default=None, metavar="boards.yaml")
    s.add_argument(
        "--labgrid", metavar="COORDINATOR", default=None, help="the boards are this coordinator's places"
    )
    s.add_argument("--timeout", type=seconds, default=5.0, metavar="SECONDS", help="per board (default 5 s)")
    s.add_argument("--json", metavar="FILE", default=None)

    r = sub.add_parser("run", help="run a plan over its boards concurrently; prints the plan id")
    r.add_argument("plan", metavar="PLAN.yaml")
    _exec_options(r)

    rs = sub.add_parser("resume", help="continue exactly the unfinished items of a plan")
    rs.add_argument("plan_id", metavar="PLAN_ID")
    _exec_options(rs)

    res = sub.add_parser("results", help="a plan's items and results from the DB")
    res.add_argument("plan_id", metavar="PLAN_ID")
    res.add_argument("--json", metavar="FILE", default=None)
    add_db_option(res)

    rep = sub.add_parser("report", help="a plan's matrix and gates as HTML, Markdown, JUnit")
    rep.add_argument("plan_id", metavar="PLAN_ID")
    rep.add_argument("--html", metavar="FILE", default=None)
    rep.add_argument("--md", metavar="FILE", default=None)
    rep.add_argument("--junit", metavar="FILE", default=None)
    add_db_option(rep)

    pt = sub.add_parser("prometheus-targets", help="a Prometheus file_sd file for the agents' /metrics")
    pt.add_argument("--inventory", required=True, metavar="boards.yaml")
    pt.add_argument("--out", required=True, metavar="targets.json")
    return p


def _exec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", metavar="FILE", default=None, help="write {plan_id, jobs[{job, board, run_id, status}]}"
    )
    p.add_argument(
        "--drop-after",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="a board unreachable this long while running is marked dropped (default 30 s)",
    )
    p.add_argument(
        "--live",
        choices=("auto", "table", "lines"),
        default="auto",
        help="live view (default: table on a TTY)",
    )
    p.add_argument(
        "--labgrid",
        metavar="COORDINATOR",
        default=None,
        help="boards are this labgrid coordinator's places (tag edgebench_agent=HOST:PORT); each is reserved "
        "and acquired for its jobs ([labgrid] extra)",
    )
    p.add_argument(
        "--reserve-timeout",
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for a place another client holds, then skip it (default 60 s)",
    )
    add_db_option(p)


def run(args: argparse.Namespace) -> int:
    return {
        "status": _status,
        "run": _run,
        "resume": _run,
        "results": _results,
        "report": _report,
        "prometheus-targets": _targets,
    }[args.fleet_command](args)


def _status(args: argparse.Namespace) -> int:
    from controller.fleet import inventory, status

    if bool(args.inventory) == bool(args.labgrid):
        raise BadInput("fleet status needs --inventory boards.yaml or --labgrid COORDINATOR")
    if args.labgrid:
        from controller.fleet.labgrid import Labgrid

        lg = Labgrid(args.labgrid)
        try:
            boards = lg.boards()
            holders = {b.name: lg.holder(b.name) for b in boards}
        finally:
            lg.close()
    else:
        boards, holders = inventory.load(args.inventory), {}
    rows = status.fleet_status(boards, args.timeout)
    for r in rows:  # who holds the place, for a lab that shares its boards through labgrid
        if r["board"] in holders:
            r["labgrid_acquired"] = holders[r["board"]]
    print(status.render(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0  # unreachable boards are a finding, not a failure of the command


def _run(args: argparse.Namespace) -> int:
    from controller.fleet import runner
    from controller.fleet.report import terminal
    from controller.fleet.store import FleetStore

    tty = {"auto": None, "table": True, "lines": False}[args.live]
    db = open_db(args)
    lg = None
    try:
        store = FleetStore(db)
        if args.labgrid:
            from controller.fleet.labgrid import Labgrid

            lg = Labgrid(args.labgrid, args.reserve_timeout)
        with _sigterm_interrupts():  # SIGTERM unwinds like Ctrl-C: the finally below releases places
            if args.fleet_command == "run":
                plan_id, code = runner.start(args.plan, store, args.drop_after, tty=tty, labgrid=lg)
            else:
                plan_id, code = runner.resume(args.plan_id, store, args.drop_after, tty=tty, labgrid=lg)
        items = store.items(plan_id)
        print(terminal(plan_id, store.results(plan_id)))
        if code == 1:
            print(f"unfinished items: edgebench fleet resume {plan_id}", file=sys.stderr)
        if args.json:
            _write(args.json, {"plan_id": plan_id, "jobs": [_job_row(i) for i in items]})
    finally:
        if lg is not None:
            lg.close()
        db.close()
    return code


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread (tests call main() from one): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _job_row(i: dict) -> dict:
    return {
        k: i.get(k)
        for k in ("job", "board", "model", "run_id", "status", "reason", "bytes_pushed", "attempts")
    }


def _load(args: argparse.Namespace) -> tuple[str, list[dict]]:
    from controller.fleet.store import FleetStore

    db = open_db(args)
    try:
        store = FleetStore(db)
        rec = store.plan(args.plan_id)
        if rec is None:
            raise BadInput(f"no such plan: {args.plan_id}")
        return rec["plan_id"], store.results(rec["plan_id"])
    finally:
        db.close()


def _results(args: argparse.Namespace) -> int:
    from controller.fleet import report

    plan_id, items = _load(args)
    print(report.terminal(plan_id, items))
    if args.json:
        _write(
            args.json,
            {
                "plan_id": plan_id,
                "jobs": [{**_job_row(i), "gates": i["gates"], "result": i["result"]} for i in items],
            },
        )
    return 0


def _report(args: argparse.Namespace) -> int:
    from controller.fleet import report

    if not (args.html or args.md or args.junit):
        raise BadInput("fleet report needs --html, --md or --junit")
    plan_id, items = _load(args)
    plots = {}
    if args.html:
        db = open_db(args)
        try:
            plots = report.history_plots(db, items)
        finally:
            db.close()
    if args.md:
        _write_text(args.md, report.markdown(plan_id, items))
    if args.junit:
        _write_text(args.junit, report.junit(plan_id, items))
    if args.html:
        _write_text(args.html, report.render_html(plan_id, items, plots))
    print(report.summary_line(plan_id, items))
    return 0


def _targets(args: argparse.Namespace) -> int:
    from controller.fleet import inventory, prometheus

    boards = inventory.load(args.inventory)
    doc = prometheus.file_sd(boards)
    _write(args.out, doc)
    print(f"{sum(len(g['targets']) for g in doc)} target(s) written to {args.out}")
    return 0


def _write(path: str, doc: Any) -> None:
    _write_text(path, json.dumps(doc, indent=1))


def _write_text(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
