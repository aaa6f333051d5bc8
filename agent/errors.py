"""Error kinds shared by agent, worker and controller. Each maps to one exit code
(DESIGN.md): bad input 2, run failure 1, gate failure 3."""

from __future__ import annotations


class EdgebenchError(Exception):
    exit_code = 1
    code = "run_failed"


class BadInput(EdgebenchError):
    """The user's input is wrong: nothing is stored, exit code 2."""

    exit_code = 2
    code = "bad_input"


class RunFailed(EdgebenchError):
    """The run itself failed (runtime crash, meter gone, ...): exit code 1."""

    exit_code = 1
    code = "run_failed"


class GateFailed(EdgebenchError):
    """A fallback, validation or soak gate failed: exit code 3."""

    exit_code = 3
    code = "gate_failed"


class ResourceExhausted(EdgebenchError):
    """The agent cannot take more now (a full queue, too little free space):
    gRPC RESOURCE_EXHAUSTED; try again later."""

    exit_code = 1
    code = "resource_exhausted"


EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3


def one_line(text: object, limit: int = 500) -> str:
    """An error text as one line (a runtime's multi-line message, a traceback's
    last words) of at most ``limit`` characters: what a user sees."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# 128 + SIGPIPE: what a Unix tool reports when the reader of its output left
EXIT_BROKEN_PIPE = 141


def stdout_gone() -> int:
    """The reader of stdout went away (``| head -1``): point stdout at /dev/null
    so the interpreter's final flush stays quiet, and exit as ``seq | head`` does."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # a stdout without a file descriptor
        pass
    return EXIT_BROKEN_PIPE
