"""Type checks of a run spec: it arrives as JSON from anyone who holds the
token, so every field of a spec dataclass must hold a value of its declared
type before anything reads it (split from agent/spec.py, which keeps the
dataclasses and their bounds)."""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from agent.errors import BadInput

_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def shown(text: str, limit: int = 40) -> str:
    """A user's value in a message, cut: a 100 KB key must not come back whole."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_types(obj: Any, prefix: str) -> None:
    """Every field of a spec dataclass holds a value of its declared type:
    a str where a number belongs, a list for a dict, nesting where a string
    belongs are refused in one line before anything reads them."""
    hints = _hints(type(obj))
    for f in fields(obj):
        _check_value(getattr(obj, f.name), hints[f.name], f"{prefix}{f.name}")


def _check_value(value: Any, tp: Any, path: str) -> None:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]  # our unions are X | None
        origin = typing.get_origin(tp)
    if is_dataclass(tp):
        if not isinstance(value, tp):
            raise BadInput(f"run spec field {path} must be an object")
        check_types(value, f"{path}.")
    elif origin is list:
        if not isinstance(value, list):
            raise BadInput(f"run spec field {path} must be a list, not {_json_kind(value)}")
        (item,) = typing.get_args(tp)
        for i, v in enumerate(value):
            _check_value(v, item, f"{path}[{i}]")
    elif origin is dict:
        if not isinstance(value, dict):
            raise BadInput(f"run spec field {path} must be an object, not {_json_kind(value)}")
        _, item = typing.get_args(tp)
        for k, v in value.items():
            if not isinstance(k, str):
                raise BadInput(f"run spec field {path} must have string keys")
            _check_value(v, item, f"{path}[{shown(repr(k))}]")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(f"run spec field {path} must be a number, not {_json_kind(value)}")
    elif tp in _KIND_NAMES:
        # bool is an int to Python, not to JSON; 1e15 (a float) is no integer
        if type(value) is not tp:
            raise BadInput(f"run spec field {path} must be {_KIND_NAMES[tp]}, not {_json_kind(value)}")


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
