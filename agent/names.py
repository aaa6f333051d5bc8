"""The names the agent knows, each list kept once: run kinds, runtimes, meter
kinds (with the class that reads each), model formats and the runtime each
defaults to, ONNX Runtime provider names. numpy- and runtime-free: the
agent's main process uses these to judge a run spec before any worker loads
a runtime. A bottom module: imports nothing of the agent's but its errors.
"""

from __future__ import annotations

from pathlib import Path

from agent.errors import BadInput

KINDS = ("bench", "soak", "validate", "placement")  # run kinds (RunSpec.kind)
RUNTIMES = ("onnxruntime", "litert")
# meter kind -> (module, class), imported lazily by power/base.make_meter: the agent stays light
METERS: dict[str, tuple[str, str]] = {
    "ina-csv": ("agent.power.ina_csv", "InaCsvMeter"),
    "scpi": ("agent.power.scpi", "ScpiMeter"),
    "ppk2": ("agent.power.ppk2", "Ppk2Meter"),
}
METER_KINDS = tuple(METERS)
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
