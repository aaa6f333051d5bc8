"""What each accelerator wants from a quantized model, where its vendor says so.

Weights are per-channel (one scale per output channel) by default and in every
preset whose target takes them: a depthwise detector quantized per-tensor
loses nearly all its accuracy (issue 22: PP-PicoDet mAP50-95 0.839 float,
0.017 per-tensor, 0.635 per-channel). Per-tensor only where a target needs
it, and the quantize report then says which target.

- ``cpu``: ONNX Runtime's CPU EP runs QDQ Conv as QLinearConv, whose kernel
  takes a weight scale "of size 1 or M" (M output channels):
  onnxruntime/core/providers/cpu/quantization/qlinearconv.cc. uint8
  asymmetric activations, int8 symmetric weights: U8S8. It is not ORT's
  default: its quantization docs ("Data type selection") call S8S8 with QDQ
  "the default setting ... the first choice", and warn that U8S8 on x86-64
  with AVX2/AVX512 but no VNNI runs on VPMADDUBSW, whose 16-bit sums can
  saturate ("When and why do I need to try U8U8?": reduce_range or U8U8 is
  the answer). On such a host (AMD EPYC, AVX2, no VNNI) YOLOv8n DocLayNet's
  Convs alone lose AP50 0.755 -> 0.31 as U8S8 and keep 0.59 as S8S8. The
  preset stays U8S8 for ARM and VNNI CPUs, where it has no such issue.
- ``xnnpack``: ORT's XNNPACK EP maps per-channel int8 conv weights to
  XNNPACK's qc8 kernels (``op_compute_type_qs8_per_channel`` ->
  ``xnn_create_convolution2d_nhwc_qs8_qc8w``:
  onnxruntime/core/providers/xnnpack/nn/conv.cc); same types as ``cpu``.
- ``openvino``: int8 symmetric weights, uint8 activations, per-channel
  (OpenVINO POT / NNCF DefaultQuantization: "mixed" preset = symmetric
  weights, asymmetric activations; weights per output channel).
- ``tensorrt``: symmetric INT8 for activations and weights ("TensorRT supports
  only symmetric quantization ... zero point must be 0": NVIDIA TensorRT
  Developer Guide, "Working with Quantized Types"), per-channel weights
  (same guide, "Explicit Quantization": Q/DQ weights quantized per channel
  along the output-channel axis), QDQ.
- ``tidl``: AM62A, AM67A, AM68A, AM69A (MMAv2) take "full non-power-of-2
  quantization and per-channel weight quantization"; ``tidl-mmav1``: the
  legacy TDA4VM (MMAv1) "uses per-tensor, power-of-2-scale quantization"
  (TI edgeai-tensorlab, edgeai_torchmodelopt xmodelopt/quantization README).
  Both int8 symmetric.
"""

from __future__ import annotations

from typing import Any

from agent.errors import BadInput

# the default when neither a preset nor --per-tensor says otherwise
DEFAULT_PER_CHANNEL = True

PRESETS: dict[str, dict[str, Any]] = {
    "tensorrt": {"activation_type": "int8", "weight_type": "int8", "symmetric_activations": True,
                 "symmetric_weights": True, "per_channel": True},
    "cpu": {"activation_type": "uint8", "weight_type": "int8", "symmetric_activations": False,
            "symmetric_weights": True, "per_channel": True},
    "openvino": {"activation_type": "uint8", "weight_type": "int8", "symmetric_activations": False,
                 "symmetric_weights": True, "per_channel": True},
    "tidl": {"activation_type": "int8", "weight_type": "int8", "symmetric_activations": True,
             "symmetric_weights": True, "per_channel": True},
    "tidl-mmav1": {"activation_type": "int8", "weight_type": "int8", "symmetric_activations": True,
                   "symmetric_weights": True, "per_channel": False},
}  # fmt: skip
PRESETS["xnnpack"] = PRESETS["cpu"]
# why a preset quantizes per-tensor: the quantize report says it
PER_TENSOR_BECAUSE = {"tidl-mmav1": "TDA4VM's MMAv1 accelerator takes per-tensor, power-of-2 scales only"}


def preset(name: str) -> dict[str, Any]:
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise BadInput(f"unknown --preset {name!r}; expected one of {', '.join(sorted(PRESETS))}") from None
