"""edgebench report: a stored run (RUN_ID) or a result.json as a terminal
summary, Markdown, JUnit or HTML."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from controller import extras
from controller.commands.common import add_db_option, open_db


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="render a result (RUN_ID from the DB, or a result.json)")
    p.add_argument("run", metavar="RUN_ID|result.json")
    add_db_option(p)
    p.add_argument("--md", metavar="FILE", default=None, help="write Markdown")
    p.add_argument("--junit", metavar="FILE", default=None, help="write the gates as JUnit XML")
    p.add_argument("--html", metavar="FILE", default=None, help="write the HTML report")
    p.add_argument(
        "--files",
        metavar="DIR",
        default=None,
        help="the run directory for the HTML plots (default: beside result.json); a result from the DB "
        "draws from the series it carries",
    )
    return p


def load_result(ref: str, args: argparse.Namespace) -> tuple[dict, Path | None]:
    from agent.errors import BadInput

    p = Path(ref)
    if p.is_file():
        try:
            doc = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadInput(f"{ref}: not a result JSON: {exc}") from None
        if not isinstance(doc, dict) or "run_id" not in doc:
            raise BadInput(f"{ref}: not an edgebench result document")
        return doc, p.parent
    # not a file: a run id, looked up in the results DB (absent on a board-only install)
    db = open_db(args, f"no such file: {ref}; a RUN_ID is looked up in the results DB, which")
    try:
        doc = db.get(ref)
    finally:
        db.close()
    if doc is None:
        raise BadInput(f"no such run or file: {ref}")
    return doc, None


def run(args: argparse.Namespace) -> int:
    from controller.report import junit, markdown, terminal
    from controller.report.placement import use_color

    if args.html:  # before anything is written: the page's plots are drawn with matplotlib
        extras.need("matplotlib", "the HTML report (--html)")
    result, here = load_result(args.run, args)
    print(terminal.render(result, color=use_color()))
    if args.md:
        Path(args.md).write_text(markdown.render(result))
    if args.junit:
        Path(args.junit).write_text(junit.render(result))
    if args.html:
        from controller.report.html import write_html

        run_dir = Path(args.files) if args.files else here
        write_html(result, run_dir if run_dir is not None and run_dir.is_dir() else None, Path(args.html))
    return 0
