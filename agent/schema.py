"""The one schema walker for the documents the project reads: run specs (a
dataclass, walked by its annotations), hardware profiles, fleet inventories
and plans (schema nodes). No third-party dependency: boards have no
jsonschema. The walker finds the first problem and raises ``SchemaError``
with its place; each document's reader words it in its own style (a spec
field over gRPC, ``FILE: field:`` for a profile, ``FILE:LINE:`` for a plan).

A schema node is one of:
  - a type: ``str``, ``bool``, ``int`` (not bool), ``float`` or ``NUMBER``
    (an int or a float, not bool), or a tuple of them (any of);
  - ``{"enum": (values...)}``;
  - ``{"list": node}``, ``{"map": node}`` (string keys, one node for every value);
  - ``{"fields": {name: (node, required)}}``: known keys only; a None value
    counts as absent;
  - a dataclass: every field's value against its annotation (``X | None``,
    ``list[X]``, ``dict[str, X]``, nested dataclasses; ``Any`` is not checked).

A bottom module: imports nothing of the agent's.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

NUMBER = (int, float)
# path segments: ("field", name) a named field, ("key", k) a map key, ("index", i) a list item
Path = tuple[tuple[str, Any], ...]


class SchemaError(Exception):
    """The first problem: ``kind`` is ``type`` (``expected`` names the kind of
    value: bool, integer, number, string, list, mapping, object, or the
    types' names), ``enum``, ``unknown`` (a key the node does not name),
    ``missing`` (a required field) or ``keys`` (a mapping with a non-string key)."""

    def __init__(self, path: Path, kind: str, expected: str = "", value: Any = None) -> None:
        super().__init__(f"{dotted(path) or '<top>'}: {kind} {expected}".strip())
        self.path, self.kind, self.expected, self.value = path, kind, expected, value


def is_finite_number(x: Any) -> bool:
    """An int or float (not bool) that is neither inf nor NaN."""
    return isinstance(x, NUMBER) and not isinstance(x, bool) and math.isfinite(x)


def dotted(path: Path) -> str:
    """``clocks.gpu.policies[0]``: fields and map keys joined by dots, items indexed."""
    out = ""
    for kind, v in path:
        out += f"[{v}]" if kind == "index" else (f".{v}" if out else str(v))
    return out


def walk(value: Any, node: Any, path: Path = ()) -> None:
    """Raise SchemaError at the first place ``value`` does not fit ``node``."""
    if is_dataclass(node) and isinstance(node, type):
        if not isinstance(value, node):
            raise SchemaError(path, "type", "object", value)
        hints = _hints(node)
        for f in fields(value):
            _annotated(getattr(value, f.name), hints[f.name], (*path, ("field", f.name)))
    elif isinstance(node, dict) and "enum" in node:
        if value not in node["enum"]:
            raise SchemaError(path, "enum", ", ".join(map(str, node["enum"])), value)
    elif isinstance(node, dict) and "list" in node:
        if not isinstance(value, list):
            raise SchemaError(path, "type", "list", value)
        for i, item in enumerate(value):
            walk(item, node["list"], (*path, ("index", i)))
    elif isinstance(node, dict) and "map" in node:
        if not isinstance(value, dict):
            raise SchemaError(path, "type", "mapping", value)
        for k, v in value.items():
            walk(v, node["map"], (*path, ("key", k)))
    elif isinstance(node, dict) and "fields" in node:
        if not isinstance(value, dict):
            raise SchemaError(path, "type", "mapping", value)
        for k in value:
            if k not in node["fields"]:
                raise SchemaError((*path, ("field", k)), "unknown", ", ".join(node["fields"]), value[k])
        for k, (sub, required) in node["fields"].items():
            if value.get(k) is None:
                if required:
                    raise SchemaError((*path, ("field", k)), "missing")
                continue
            walk(value[k], sub, (*path, ("field", k)))
    elif not _is_a(value, node):
        raise SchemaError(path, "type", type_names(node), value)


def type_names(node: Any) -> str:
    """``int/float`` for a tuple of types, ``str`` for one."""
    return "/".join(t.__name__ for t in node) if isinstance(node, tuple) else node.__name__


def _is_a(value: Any, node: Any) -> bool:
    kinds = node if isinstance(node, tuple) else (node,)
    if isinstance(value, bool):  # bool is an int to Python, not to JSON or YAML
        return bool in kinds
    if float in kinds:
        return isinstance(value, (int, float))  # an integer is a number
    return isinstance(value, kinds)


# -- dataclass annotations -------------------------------------------------------
_KIND = {bool: "bool", int: "integer", float: "number", str: "string"}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _annotated(value: Any, tp: Any, path: Path) -> None:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]  # our unions are X | None
        origin = typing.get_origin(tp)
    if is_dataclass(tp):
        walk(value, tp, path)
    elif origin is list:
        if not isinstance(value, list):
            raise SchemaError(path, "type", "list", value)
        (item,) = typing.get_args(tp)
        for i, v in enumerate(value):
            _annotated(v, item, (*path, ("index", i)))
    elif origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(path, "type", "mapping", value)
        _, item = typing.get_args(tp)
        for k, v in value.items():
            if not isinstance(k, str):
                raise SchemaError(path, "keys", "string", k)
            _annotated(v, item, (*path, ("key", k)))
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, NUMBER):
            raise SchemaError(path, "type", "number", value)
    elif tp in _KIND and type(value) is not tp:
        # exact: bool is no int, and 1e15 (a float) is no integer
        raise SchemaError(path, "type", _KIND[tp], value)
