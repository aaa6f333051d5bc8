"""edgebench: the controller CLI. One module per command under
controller/commands/ (add_parser(subparsers), run(args) -> int); errors become
one `edgebench: error: ...` line and the exit code of DESIGN.md."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any

from agent.errors import EXIT_BAD_INPUT, EXIT_RUN_FAILED, EdgebenchError, one_line, stdout_gone
from agent.version import VersionAction
from controller import extras
from controller.commands import (
    artifacts,
    bench,
    cancel,
    compare,
    coverage,
    demo,
    fetch,
    fleet,
    history,
    info,
    localize,
    optimize,
    pipeline,
    placement,
    push,
    quantize,
    reference,
    report,
    rm,
    runs,
    soak,
    validate,
)

# in `edgebench --help` order
COMMANDS = (
    info,
    push,
    bench,
    placement,
    soak,
    validate,
    reference,
    localize,
    quantize,
    optimize,
    coverage,
    runs,
    fetch,
    cancel,
    artifacts,
    rm,
    report,
    compare,
    fleet,
    history,
    pipeline,
    demo,
)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line too, pointing at --help (exit 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `--duration -5s` is a (negative) value, not an unknown option: argparse
        # only knows plain negative numbers, and said "expected one argument";
        # our options never start with a digit, so the value reaches its type
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"edgebench: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgebench", description="on-device benchmarking for edge AI boards")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for mod in COMMANDS:
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def _say(exc: BaseException | str) -> None:
    print(f"edgebench: error: {one_line(exc) or 'unknown error'}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed its one-line usage error already
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        code = int(args._run(args))
        sys.stdout.flush()  # a reader that left (`| head -1`) shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return stdout_gone()
    except ModuleNotFoundError as exc:
        # a net under the commands' own checks: an optional third-party package a
        # board-only install lacks is one line, never a traceback
        if (exc.name or "").split(".")[0] not in extras.CONTROLLER_PACKAGES:
            raise
        _say(f"{exc.name} is not installed here: {extras.INSTALL_HINT}")
        return EXIT_BAD_INPUT
    except EdgebenchError as exc:
        _say(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgebench: error: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        _say(exc)
        return (
            EXIT_BAD_INPUT
            if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError))
            else EXIT_RUN_FAILED
        )


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
