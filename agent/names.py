"""Model formats, the runtime each format defaults to, and ONNX Runtime
provider names. numpy- and runtime-free: the agent's main process uses these
to judge a run spec before any worker loads a runtime.
"""

from __future__ import annotations

from pathlib import Path

from agent.errors import BadInput

RUNTIME_OF_FORMAT = {"onnx": "onnxruntime", "tflite": "litert"}


def model_format(path: Path, name: str | None = None) -> str:
    """``onnx`` or ``tflite`` from the file's bytes (not its name); BadInput otherwise."""
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    # an ONNX ModelProto starts with field 1 (ir_version, varint): tag byte 0x08
    if head[:1] == b"\x08":
        return "onnx"
    raise BadInput(f"not a model file: {name or path.name} is neither ONNX nor TFLite")


def canonical_provider(name: str, known: list[str]) -> str | None:
    """``openvino`` / ``OpenVINO`` / ``OpenVINOExecutionProvider`` -> the name in ``known``."""
    low = name.lower()
    for p in known:
        pl = p.lower()
        if pl == low or pl == low + "executionprovider":
            return p
    return None
