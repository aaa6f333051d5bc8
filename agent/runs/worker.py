"""The worker process entry. The executor starts ``entry`` with the ``spawn``
context, so this process holds no gRPC threads and a crash in a runtime or
vendor delegate (segfault, abort, OOM kill) takes down only this process.

Runtime and delegate logs go to fds 1/2, often from C code, so the fds
themselves are redirected to ``stderr.log``, not just ``sys.stdout``.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from agent import rundir
from agent.clock import now_ns
from agent.errors import one_line

DEFAULT_TASK = "agent.load.task:run_task"


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the agent dies: an orphaned worker would
    keep loading the board that a restarted agent measures."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _redirect_output(run_dir: Path) -> None:
    fd = os.open(run_dir / rundir.STDERR, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # line buffering so the tail is on disk when the runtime crashes us
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


def _load(task: str) -> Any:
    module, _, func = task.partition(":")
    return getattr(importlib.import_module(module), func)


def entry(spec_dict: dict, run_dir: str, conn: Connection, task: str = DEFAULT_TASK) -> None:
    _die_with_parent()
    rd = Path(run_dir)
    _redirect_output(rd)
    # the agent cancels with SIGTERM: the default action ends the process at
    # once, even inside a native runtime call (a Python handler would wait for
    # the call to return); a runtime that blocks SIGTERM gets SIGKILL after the
    # agent's grace period
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def send(msg: dict) -> None:
        conn.send(msg)

    from agent.errors import EdgebenchError, one_line
    from agent.messages import Error
    from agent.spec import RunSpec

    try:
        spec = RunSpec.from_dict(spec_dict)
        # the profile accelerator's environment, before any runtime or delegate loads
        os.environ.update(spec.env)
        _load(task)(spec, rd, send)
    except EdgebenchError as exc:
        send(Error(exc.code, one_line(str(exc)), now_ns()).to_dict())
    except Exception as exc:  # the run failed; say why in one line, keep the trace in stderr.log
        traceback.print_exc()
        msg = f"{type(exc).__name__}: {exc}"
        send(Error("run_failed", one_line(msg), now_ns()).to_dict())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        conn.close()


def died_message(exitcode: int | None, stderr_path: Path) -> str:
    """``worker died: SIGSEGV (signal 11); stderr: ...``: one line."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        msg = f"worker died: {name} (signal {-exitcode})"
        if -exitcode == signal.SIGKILL:
            msg += ", killed (out of memory?)"
    elif exitcode is None:
        msg = "worker died: unknown cause"
    else:
        msg = f"worker died: exit code {exitcode} without a result"
    tail = rundir.stderr_tail(stderr_path)
    if tail:
        msg += f"; stderr: {tail}"
    return one_line(msg)
