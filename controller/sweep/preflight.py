"""Every point checked against the model before the first run: a shape that
does not fit an input, a batch on a static model, an input name the model
lacks are one BadInput line (exit 2) with nothing run or stored. The model's
declared inputs come from the ONNX graph (agent/onnx_proto.py: no onnx
package, so the board-only install checks too); a .tflite model is checked by
the agent at each point's start instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent import onnx_proto
from agent.runtimes.base import check_shape_names, resolve_shape
from agent.spec import RunSpec


def declared_inputs(model: Path) -> dict[str, list[Any]] | None:
    """{input name: declared dims (None or a symbol for dynamic)}; None when unreadable here."""
    if model.suffix.lower() != ".onnx":
        return None
    try:
        return onnx_proto.read_inputs(model)
    except (ValueError, UnicodeDecodeError):  # a malformed model: the agent says why at the first point
        return None


def check(model: Path, labelled: list[tuple[str, RunSpec]]) -> None:
    """Each point's shapes as the agent's runners resolve them; the first
    misfit raised, naming the point."""
    inputs = declared_inputs(model)
    if inputs is None:
        return
    from agent.errors import BadInput

    for label, spec in labelled:
        try:
            check_shape_names(spec.input_shapes, list(inputs))
            for name, declared in inputs.items():
                resolve_shape(name, declared, spec.input_shapes.get(name), batch=spec.batch)
        except BadInput as exc:
            raise BadInput(f"sweep point {label}: {exc}") from None
