"""What each accelerator wants from a quantized model, where its vendor says so.

- ``tensorrt``: symmetric INT8 for activations and weights, per-channel
  weights, QDQ ("TensorRT supports only symmetric quantization ... zero point
  must be 0": NVIDIA TensorRT Developer Guide, "Working with Quantized Types";
  ONNX Runtime TensorRT EP docs, "INT8 ... QDQ").
- ``cpu`` / ``xnnpack``: uint8 asymmetric activations, int8 symmetric weights
  (ONNX Runtime quantization docs, "data type selection": U8S8 is the default
  and fastest on x86/ARM CPUs).
- ``openvino``: int8 symmetric weights, uint8 activations, per-channel
  (OpenVINO NNCF / POT defaults: "weights ... symmetric per-channel,
  activations asymmetric per-tensor").
- ``tidl``: int8 symmetric per-tensor, power-of-two scales preferred (TI
  edgeai-tidl-tools docs, "TIDL supports symmetric quantization"); per-tensor
  keeps it within what the TIDL importer accepts.
"""

from __future__ import annotations

from typing import Any

from agent.errors import BadInput

PRESETS: dict[str, dict[str, Any]] = {
    "tensorrt": {"activation_type": "int8", "weight_type": "int8", "symmetric_activations": True,
                 "symmetric_weights": True, "per_channel": True},
    "cpu": {"activation_type": "uint8", "weight_type": "int8", "symmetric_activations": False,
            "symmetric_weights": True, "per_channel": False},
    "openvino": {"activation_type": "uint8", "weight_type": "int8", "symmetric_activations": False,
                 "symmetric_weights": True, "per_channel": True},
    "tidl": {"activation_type": "int8", "weight_type": "int8", "symmetric_activations": True,
             "symmetric_weights": True, "per_channel": False},
}  # fmt: skip
PRESETS["xnnpack"] = PRESETS["cpu"]


def preset(name: str) -> dict[str, Any]:
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise BadInput(f"unknown --preset {name!r}; expected one of {', '.join(sorted(PRESETS))}") from None
