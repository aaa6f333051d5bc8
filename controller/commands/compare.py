"""edgebench compare RUN_A RUN_B | compare --baseline LABEL RUN: A (the
original, or the labelled baseline) against B (the optimised variant, or the
new run): size, speedup with a bootstrap interval, p99, throughput, soak and
power changes, accuracy, placement; exit 3 on a significant regression."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from controller.commands.common import add_db_option, open_db


def _percent_arg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not v >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare",
        help="A against B (RUN_ID or result.json each), or RUN against its --baseline LABEL",
        description="Ratios are A/B: >1 means B is smaller (size) or faster (speedup).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="RUN_A RUN_B, or one RUN with --baseline")
    add_db_option(p)
    p.add_argument(
        "--baseline",
        metavar="LABEL",
        default=None,
        help="compare RUN against the newest earlier run with this label (K=V or K), the same model "
        "sha256 and the same board, from the results DB",
    )
    p.add_argument("--json", metavar="FILE", default=None, help="write the comparison as JSON")
    p.add_argument("--md", metavar="FILE", default=None, help="write the comparison as Markdown")
    p.add_argument(
        "--fail-on-regression",
        metavar="PCT",
        type=_percent_arg,
        default=None,
        help="exit 3 when B is significantly slower than A by more than PCT percent, or B failed an "
        "accuracy gate",
    )
    p.add_argument(
        "--files-a",
        metavar="DIR",
        default=None,
        help="A's run directory (iterations.npy: exact latencies; default: beside a result.json)",
    )
    p.add_argument("--files-b", metavar="DIR", default=None, help="B's run directory, as --files-a")
    p.add_argument(
        "--run-noise",
        metavar="PCT",
        type=_percent_arg,
        default=None,
        help="run-to-run spread of a median latency on the board, in the interval (default 2; 0: the "
        "within-run bootstrap alone)",
    )
    return p


def _label(text: str) -> tuple[str, str | None]:
    from agent.errors import BadInput

    key, eq, value = text.partition("=")
    if not key.strip():
        raise BadInput(f"--baseline: expected K=V or K, got {text!r}")
    return key.strip(), (value if eq else None)


def _iterations(doc: dict, files: str | None, beside: Path | None) -> Any:
    """The run's iterations.npy rows from --files-X, else from beside its
    result.json; None when neither holds one (the stored quantiles serve)."""
    from agent import rundir as run_files
    from agent.errors import BadInput

    if files is None:
        if beside is not None and (beside / run_files.ITERATIONS).is_file():
            return run_files.load_iterations(beside)
        return None
    d = Path(files)
    if not (d / run_files.ITERATIONS).is_file():
        raise BadInput(f"no {run_files.ITERATIONS} in {files}")
    res = d / run_files.RESULT
    if res.is_file():
        try:
            other = json.loads(res.read_text()).get("run_id")
        except (ValueError, UnicodeDecodeError, AttributeError):
            other = None
        if other and other != doc.get("run_id"):
            raise BadInput(f"{files} holds run {other}, not {doc.get('run_id')}")
    return run_files.load_iterations(d)


def _baseline(run: dict, label: str, args: argparse.Namespace) -> dict:
    from agent.errors import BadInput

    key_value = _label(label)
    sha = (run.get("model") or {}).get("sha256")
    if not sha:
        raise BadInput(f"run {run.get('run_id')} has no model sha256 to find a baseline for")
    agent = run.get("agent") or {}
    created = run.get("created_unix")
    before = (float(created), str(run.get("run_id"))) if isinstance(created, (int, float)) else None
    db = open_db(args)
    try:
        doc = db.baseline(sha, key_value, agent.get("hostname"), agent.get("board"), before)
    finally:
        db.close()
    if doc is None:
        raise BadInput(
            f"no baseline: no earlier completed run labelled {label} of model sha256 {sha[:12]} on "
            f"host {agent.get('hostname') or '-'} board {agent.get('board') or '-'} in the results DB"
        )
    return doc


def run(args: argparse.Namespace) -> int:
    from agent.errors import BadInput
    from controller.commands.report import load_result
    from controller.report.compare import RUN_NOISE, compare, failures
    from controller.report.compare_text import markdown, render

    if args.baseline is not None:
        if len(args.runs) != 1:
            raise BadInput("compare --baseline LABEL takes one RUN")
        b, here_b = load_result(args.runs[0], args)
        a, here_a = _baseline(b, args.baseline, args), None
    else:
        if len(args.runs) != 2:
            raise BadInput("compare takes RUN_A RUN_B (or --baseline LABEL RUN)")
        a, here_a = load_result(args.runs[0], args)
        b, here_b = load_result(args.runs[1], args)
    c = compare(
        a,
        b,
        iterations_a=_iterations(a, args.files_a, here_a),
        iterations_b=_iterations(b, args.files_b, here_b),
        run_noise=RUN_NOISE if args.run_noise is None else args.run_noise / 100,
    )
    why = failures(c, args.fail_on_regression) if args.fail_on_regression is not None else []
    c["regression"] = {"fail_on_pct": args.fail_on_regression, "failed": bool(why), "reasons": why}
    print(render(c))
    for line in why:
        print(f"REGRESSION: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps(c, indent=1))
    if args.md:
        text = markdown(c)
        if why:
            text += "\n" + "\n".join(f"**REGRESSION:** {line}  " for line in why) + "\n"
        Path(args.md).write_text(text)
    return 3 if why else 0
