"""``validate --metric-plugin MODULE:FUNCTION``: the user's metric, run on the
controller over the device's fetched outputs, with its gates (--plugin-gate)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import tempfile
from pathlib import Path
from typing import Any

from agent.errors import BadInput, one_line

_PLUGIN_GATE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


def load(text: str) -> Any:
    """The plugin function ``MODULE:FUNCTION`` or ``path.py:FUNCTION`` names."""
    mod, sep, fn = text.rpartition(":")
    if not sep or not mod or not fn:
        raise BadInput(f"bad --metric-plugin {text!r}: expected module:function or path.py:function")
    try:
        if mod.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(mod).stem, mod)
            if spec is None or spec.loader is None or not Path(mod).is_file():
                raise BadInput(f"--metric-plugin: no file {mod}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod)
    except BadInput:
        raise
    except Exception as exc:  # the user's module: any error is theirs, in one line
        raise BadInput(f"--metric-plugin {mod}: {one_line(f'{type(exc).__name__}: {exc}', 300)}") from None
    func = getattr(module, fn, None)
    if not callable(func):
        raise BadInput(f"--metric-plugin: {mod} has no function {fn}")
    return func


def parse_gates(texts: list[str]) -> list[tuple[str, str, float]]:
    """--plugin-gate NAME>=X / NAME<=X -> (name, op, x)."""
    out = []
    for t in texts:
        m = _PLUGIN_GATE.match(t)
        if m is None:
            raise BadInput(f"bad --plugin-gate {t!r}: expected NAME>=X or NAME<=X")
        out.append((m.group(1), m.group(2), float(m.group(3))))
    return out


def apply(func: Any, gates: list[tuple[str, str, float]], session: Any, result: dict, ref_path: Path) -> None:
    """Fetch outputs.npz, call the plugin, add its numbers and gates to the result."""
    from agent import rundir as files
    from agent.validate.reference import Reference, load_npz

    with tempfile.TemporaryDirectory() as d:
        local = session.fetch(result["run_id"], files.OUTPUTS, Path(d) / files.OUTPUTS)
        outputs = load_npz(local, "the device's outputs")
    ref = Reference.from_arrays(load_npz(ref_path, str(ref_path)))
    try:
        values = func(outputs, ref.outputs, ref.inputs)
        values = {str(k): float(v) for k, v in dict(values).items()}
    except Exception as exc:
        raise BadInput(f"--metric-plugin failed: {one_line(f'{type(exc).__name__}: {exc}', 300)}") from None
    val = result.setdefault("validation", {})
    val["plugin"] = values
    checks = []
    for name, op, x in gates:
        v = values.get(name)
        passed = v is not None and (v >= x if op == ">=" else v <= x)
        shown = (
            "missing from the plugin's result" if v is None else f"{v:.4g} {'meets' if passed else 'misses'}"
        )
        checks.append(
            {
                "name": "plugin",
                "passed": passed,
                "message": f"{name}: {shown} {op} {x:g}",
                "metric": name,
                "value": v,
                "threshold": x,
            }  # fmt: skip
        )
    val["gates"] = list(val.get("gates") or []) + checks
    val["passed"] = all(g["passed"] for g in val["gates"])
    result["gates"] = list(result.get("gates") or []) + checks
