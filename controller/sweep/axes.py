"""``--sweep AXIS=V1,V2``: the axes a sweep varies, their values, the cartesian
product of points, and each point's run options (the bench's own options with
that point's values). Every bad spec is one BadInput line (exit 2) before any
run starts: an unknown axis, an empty list, a repeated axis or value, a bad
value, an axis also given as a plain option."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from agent.errors import BadInput
from agent.spec_text import parse_shape

AXES = ("threads", "batch", "accelerator", "input_shape", "provider")
# the bench option each axis sets, for the conflict check
OPTION = {
    "threads": "threads",
    "batch": "batch",
    "accelerator": "accelerator",
    "input_shape": None,
    "provider": "provider",
}


def _positive(axis: str, text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise BadInput(f"bad --sweep {axis} value {text!r}: expected a positive integer")
    return v


def _shape(text: str) -> str:
    """``x:1x3x320x320`` (the issue's form) or ``x=1x3x320x320``: NAME=DIMS."""
    name, sep, dims = text.rpartition(":")
    norm = f"{name}={dims}" if sep and "=" not in text else text
    try:
        n, d = parse_shape(norm)
    except BadInput as exc:
        raise BadInput(f"bad --sweep input_shape value {text!r}: {exc}") from None
    return f"{n}={'x'.join(str(x) for x in d)}"


def _value(axis: str, text: str) -> Any:
    if axis in ("threads", "batch"):
        return _positive(axis, text)
    if axis == "input_shape":
        return _shape(text)
    if axis == "provider":  # one provider, or a list in order: tensorrt+cuda+cpu
        parts = [p.strip() for p in text.split("+")]
        if not all(parts):
            raise BadInput(f"bad --sweep provider value {text!r}: expected NAME or NAME+NAME")
        return "+".join(parts)
    return text


def parse(texts: list[str]) -> dict[str, list[Any]]:
    """``["threads=1,2", "batch=1,8"]`` -> ``{"threads": [1, 2], "batch": [1, 8]}``, in order."""
    axes: dict[str, list[Any]] = {}
    for text in texts:
        axis, sep, vals = text.partition("=")
        axis = axis.strip().replace("-", "_")
        if not sep or not axis:
            raise BadInput(f"bad --sweep {text!r}: expected AXIS=V1,V2 (axes: {', '.join(AXES)})")
        if axis not in AXES:
            raise BadInput(f"unknown sweep axis {axis!r}; expected one of {', '.join(AXES)}")
        if axis in axes:
            raise BadInput(f"sweep axis {axis} given twice: list its values once, {axis}=V1,V2")
        raw = [v.strip() for v in vals.split(",")] if vals.strip() else []
        if not raw or not all(raw):
            raise BadInput(f"--sweep {axis}= has an empty value list: give {axis}=V1,V2")
        values = [_value(axis, v) for v in raw]
        if len(set(values)) != len(values):
            raise BadInput(f"--sweep {axis} lists a value twice: {vals}")
        axes[axis] = values
    if not axes:
        raise BadInput("a sweep needs at least one --sweep AXIS=V1,V2")
    return axes


def check_conflicts(axes: dict[str, list[Any]], args: argparse.Namespace) -> None:
    """An axis the command line also sets as a plain option is ambiguous."""
    for axis in axes:
        opt = OPTION[axis]
        if opt and getattr(args, opt, None) not in (None, [], ""):
            raise BadInput(f"--{opt.replace('_', '-')} and --sweep {axis} both set it: give one")
    if getattr(args, "start", None) == "both":
        raise BadInput("--start both is two runs per point: sweep with --start cold or warm")


def points(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product, first axis slowest: ``[{threads: 1, batch: 1}, ...]``."""
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


def label(point: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in point.items())


def apply(args: argparse.Namespace, point: dict[str, Any]) -> argparse.Namespace:
    """The bench options of one point: the command's own, with the point's values."""
    d = dict(vars(args))
    for axis, v in point.items():
        if axis == "input_shape":
            name = v.split("=", 1)[0]
            kept = [s for s in d.get("input_shape") or [] if s.rpartition("=")[0] != name]
            d["input_shape"] = [*kept, v]
        elif axis == "provider":
            d["provider"] = v.split("+")
        else:
            d[axis] = v
    return argparse.Namespace(**d)
