"""YAML with line numbers: a bad inventory or plan is refused naming the line.

``load(path)`` returns the plain data plus a ``Doc`` that answers the line of
any value by its path (``("boards", 0, "address")``), from yaml's node marks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from agent.errors import BadInput
from agent.schema import SchemaError, walk

Key = tuple[Any, ...]


class Doc:
    """A loaded YAML file: its data and the 1-based line of every node."""

    def __init__(self, path: Path, data: Any, lines: dict[Key, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line(self, key: Key) -> int:
        """The line of ``key``, else of its nearest ancestor (a missing key: its mapping)."""
        while key not in self.lines and key:
            key = key[:-1]
        return self.lines.get(key, 1)

    def error(self, key: Key, message: str) -> BadInput:
        return BadInput(f"{self.path}:{self.line(key)}: {message}")

    def check(self, key: Key, node: Any, word: Callable[[SchemaError], str]) -> None:
        """The value at ``key`` against a schema node (``agent.schema.walk``);
        its first problem as BadInput at that problem's line, worded by ``word``."""
        value = self.data
        for k in key:
            value = value[k]
        try:
            walk(value, node)
        except SchemaError as e:
            raise self.error((*key, *(v for _, v in e.path)), word(e)) from None


def load(path: str | Path) -> Doc:
    """Read a YAML file; BadInput (one line, with the line number) when it is not YAML."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInput(f"{path}{where}: not valid YAML: {problem}") from None
    lines: dict[Key, int] = {}
    data = _convert(node, (), lines, path) if node is not None else None
    return Doc(path, data, lines)


def _convert(node: yaml.Node, key: Key, lines: dict[Key, int], path: Path) -> Any:
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for k_node, v_node in node.value:
            k = _scalar(k_node, path)
            if k in out:
                raise BadInput(f"{path}:{k_node.start_mark.line + 1}: duplicate key {k!r}")
            out[k] = _convert(v_node, (*key, k), lines, path)
            lines.setdefault((*key, k), k_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, (*key, i), lines, path) for i, v in enumerate(node.value)]
    return _scalar(node, path)


def _scalar(node: yaml.Node, path: Path) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise BadInput(f"{path}:{node.start_mark.line + 1}: a key must be a plain value")
    try:
        return _construct(node)
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}:{node.start_mark.line + 1}: {exc}") from None


_loader = yaml.SafeLoader("")


def _construct(node: yaml.ScalarNode) -> Any:
    # the SafeLoader's resolver already tagged the scalar (int, float, bool, null, str)
    return _loader.construct_object(node, deep=True)
