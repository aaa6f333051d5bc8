"""``--version`` of both commands: the package version and the runtimes this
Python finds (agent.runtimes.detect), as trtexec and onnxruntime_perf_test
users expect to see them."""

from __future__ import annotations

import argparse
import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any


def package_version() -> str:
    try:
        return metadata.version("edgebench")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def version_text(prog: str) -> str:
    """``PROG VERSION (python X.Y.Z)`` and one line per runtime found."""
    from agent.runtimes.detect import runtime_info

    lines = [f"{prog} {package_version()} (python {platform.python_version()})"]
    runtimes = runtime_info()
    for name, info in runtimes.items():
        extra = ""
        if info.get("providers"):
            extra = ": " + ", ".join(info["providers"])
        elif info.get("delegates"):
            extra = ": delegates " + ", ".join(info["delegates"])
        lines.append(f"  {name} {info.get('version', '?')} ({info.get('distribution', '?')}){extra}")
    if not runtimes:
        lines.append("  no runtime found: pip install 'edgebench[onnx]' or 'edgebench[litert]'")
    return "\n".join(lines)


class VersionAction(argparse.Action):
    """``--version``: the text is built only when asked (it probes the runtimes)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        kw.setdefault("help", "print the version and the runtimes found, then exit")
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from agent.errors import stdout_gone

        try:
            print(version_text(parser.prog), flush=True)
        except BrokenPipeError:
            parser.exit(stdout_gone())
        parser.exit(0)
