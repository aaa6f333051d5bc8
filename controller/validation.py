"""validate's library side on the controller: the ValidateSpec from parsed
options, with what only the controller can read (the ONNX graph's output
quantization: boards ship a runtime, not the onnx package)."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from agent.errors import BadInput
from agent.spec import GATES, ValidateSpec


def validation_spec(args: argparse.Namespace, model: Path) -> ValidateSpec:
    """The checked ValidateSpec of validate's options (runopts.add_validation_options);
    an option a caller's namespace lacks takes its default."""
    from agent.validate.decode import check_layout  # numpy: not at the CLI's startup

    g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    gates: dict[str, dict[str, float]] = {}
    for gate in GATES:
        for out, value in g(gate, []) or []:
            gates.setdefault(gate, {})[out] = value
    boxes = {}
    for text in g("boxes", []) or []:
        out, sep, layout = text.partition("=")
        if not sep or not out or not layout:
            raise BadInput(f"bad --boxes {text!r}: expected OUTPUT=DECODER, e.g. output0=yolov8")
        check_layout(layout)
        boxes[out] = layout
    spec = ValidateSpec(
        gates=gates,
        mask_threshold=g("mask_threshold", 0.5),
        boxes=boxes,
        box_iou=g("box_iou", 0.5),
        box_score=g("box_score", 0.25),
        nms_iou=g("nms_iou", 0.5),
        max_det=g("max_det", 300),
        keep_outputs=bool(g("keep_outputs") or g("metric_plugin")),
        output_quantization=output_quantization(model),
        float_model_sha256=g("float_model_sha256"),  # localize's taps: the reference made on the board
    )
    spec.check()
    return spec


def output_quantization(model: Path) -> dict[str, list[float]]:
    try:
        key = (str(model.resolve()), model.stat().st_mtime_ns)
    except OSError:
        return {}
    return dict(_output_quantization(*key))


@functools.lru_cache(maxsize=16)  # read once per file and version (the note is said once too)
def _output_quantization(path: str, mtime_ns: int) -> dict[str, list[float]]:
    """(scale, zero point) of each integer graph output of an ONNX model that a
    QuantizeLinear with constant parameters produces. The agent has no ONNX
    parser for initializers (boards ship only a runtime); the controller reads
    them here and sends them with the spec."""
    model = Path(path)
    if model.suffix.lower() != ".onnx":
        return {}
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:  # the board-only install: integer ONNX outputs are compared as they come
        print("edgebench: note: the onnx package is not installed; integer outputs are not dequantized")
        return {}
    try:
        m = onnx.load(str(model), load_external_data=False)
    except Exception:  # the agent reports an unloadable model in one line
        return {}
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    out = {}
    for o in m.graph.output:
        node = producer.get(o.name)
        if node is None or node.op_type != "QuantizeLinear" or len(node.input) < 2:
            continue
        scale = inits.get(node.input[1])
        zp = inits.get(node.input[2]) if len(node.input) > 2 else None
        if scale is None or scale.size != 1 or (zp is not None and zp.size != 1):
            continue
        out[o.name] = [float(scale.reshape(-1)[0]), float(zp.reshape(-1)[0]) if zp is not None else 0.0]
    return out
