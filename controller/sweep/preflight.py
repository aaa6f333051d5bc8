"""Every point checked against the model before the first run: a shape that
does not fit an input, a batch on a static model, an input name the model
lacks are one BadInput line (exit 2) with nothing run or stored. The model's
declared inputs come from the ONNX graph (the ``onnx`` package of the
[controller] extra); a .tflite model, or an install without ``onnx``, is
checked by the agent at each point's start instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.runtimes.base import check_shape_names, resolve_shape
from agent.spec import RunSpec
from controller import extras


def declared_inputs(model: Path) -> dict[str, list[Any]] | None:
    """{input name: declared dims (None or a symbol for dynamic)}; None when unreadable here."""
    if model.suffix.lower() != ".onnx" or not extras.have("onnx"):
        return None
    import onnx

    try:
        m = onnx.load(str(model), load_external_data=False)
    except Exception:  # a malformed model: the agent says why, in one line, at the first point
        return None
    inits = {t.name for t in m.graph.initializer}
    out: dict[str, list[Any]] = {}
    for i in m.graph.input:
        if i.name in inits:
            continue
        dims = i.type.tensor_type.shape.dim
        out[i.name] = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else d.dim_param or None for d in dims
        ]
    return out


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
