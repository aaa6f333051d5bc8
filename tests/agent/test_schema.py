"""agent/schema.py: the one walker under run specs, profiles, inventories and
plans finds the first problem and says where, in a form each reader words."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agent.schema import NUMBER, SchemaError, dotted, is_finite_number, walk

NODE = {
    "fields": {
        "name": (str, True),
        "mode": ({"enum": ("a", "b")}, False),
        "rates": ({"list": NUMBER}, False),
        "clocks": ({"map": {"fields": {"hz": (int, True)}}}, False),
        "free": (object, False),
    }
}


def _err(value, node=NODE) -> SchemaError:
    with pytest.raises(SchemaError) as ei:
        walk(value, node)
    return ei.value


def test_the_first_problem_is_named_by_its_place():
    walk({"name": "x", "mode": "a", "rates": [1, 2.5], "clocks": {"gpu": {"hz": 5}}, "free": [{}]}, NODE)
    e = _err({"name": "x", "clocks": {"gpu": {"hz": 1.5}}})
    assert (dotted(e.path), e.kind, e.expected, e.value) == ("clocks.gpu.hz", "type", "int", 1.5)
    e = _err({"name": "x", "rates": [1, True]})  # bool is no number, as in JSON
    assert (dotted(e.path), e.expected) == ("rates[1]", "int/float")
    assert _err({"name": "x", "mode": "c"}).kind == "enum"
    assert _err({"mode": "a"}).kind == "missing" and _err({"name": None}).kind == "missing"
    assert _err([1]).expected == "mapping" and _err({"name": "x", "rates": {}}).expected == "list"


def test_unknown_keys_are_said_by_name_first():
    e = _err({"name": "x", "zeta": 1, "beta": 2})
    assert (e.kind, e.path) == ("unknown", (("field", "beta"),))


@dataclass
class Inner:
    n: int = 0


@dataclass
class Outer:
    ratio: float = 1.0
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    maybe: str | None = None


def test_a_dataclass_is_walked_by_its_annotations():
    walk(Outer(ratio=2, shapes={"x": [1, 2]}), Outer)
    e = _err(Outer(shapes={"x": [1, "2"]}), Outer)
    assert e.path == (("field", "shapes"), ("key", "x"), ("index", 1)) and e.expected == "integer"
    assert _err(Outer(flag=1), Outer).expected == "bool"  # 1 is no bool
    assert _err(Outer(inner=Inner(n=1.0)), Outer).expected == "integer"  # 1.0 is no integer
    assert _err(Outer(inner={"n": 1}), Outer).expected == "object"
    assert _err(Outer(shapes={1: [1]}), Outer).kind == "keys"
    assert is_finite_number(3) and not is_finite_number(True) and not is_finite_number(float("nan"))
