"""The FP16 variant of a float ONNX model, for GPU targets (quantize --fp16)."""

from __future__ import annotations

import warnings
from pathlib import Path

from agent.errors import BadInput


def fp16_variant(model: Path, out: Path) -> dict:
    """The float model in FP16 (inputs and outputs stay float32), for GPU targets."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise BadInput("--fp16 needs onnxconverter-common: pip install onnxconverter-common") from None
    import onnx
    import onnxruntime as ort

    from controller.quantize.prepare import constants_to_initializers

    m = onnx.load(str(model))
    constants_to_initializers(m)  # Constant-node weights would stay float32
    with warnings.catch_warnings():  # one warning per tiny weight clamped to FP16's range
        warnings.simplefilter("ignore", UserWarning)
        half = float16.convert_float_to_float16(m, keep_io_types=True)
    onnx.save(half, str(out))
    ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])  # it must load before it is reported
    return {"output": str(out), "size_bytes": out.stat().st_size}
