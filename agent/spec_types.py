"""Type checks of a run spec: it arrives as JSON from anyone who holds the
token, so every field of a spec dataclass must hold a value of its declared
type before anything reads it (split from agent/spec.py, which keeps the
dataclasses and their bounds). The walk is ``agent.schema``'s, over the
dataclasses' annotations; this module words its problem for a spec."""

from __future__ import annotations

from typing import Any

from agent.errors import BadInput
from agent.schema import SchemaError, walk

_WORDS = {"bool": "true or false", "integer": "an integer", "number": "a number", "string": "a string",
          "list": "a list", "mapping": "an object"}  # fmt: skip


def shown(text: str, limit: int = 40) -> str:
    """A user's value in a message, cut: a 100 KB key must not come back whole."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_types(obj: Any, prefix: str = "") -> None:
    """Every field of a spec dataclass holds a value of its declared type:
    a str where a number belongs, a list for a dict, nesting where a string
    belongs are refused in one line before anything reads them."""
    try:
        walk(obj, type(obj))
    except SchemaError as e:
        path = prefix + "".join(_segment(kind, v, i) for i, (kind, v) in enumerate(e.path))
        if e.kind == "keys":
            raise BadInput(f"run spec field {path} must have string keys") from None
        what = "an object" if e.expected == "object" else f"{_WORDS[e.expected]}, not {_json_kind(e.value)}"
        raise BadInput(f"run spec field {path} must be {what}") from None


def _segment(kind: str, v: Any, i: int) -> str:
    """``soak.window_s``, ``input_shapes['x'][0]``: a spec field's path."""
    if kind == "index":
        return f"[{v}]"
    if kind == "key":
        return f"[{shown(repr(v))}]"
    return f".{v}" if i else str(v)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, float):
        return shown(repr(value))  # 1e+15 where an integer belongs
    if isinstance(value, int):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
