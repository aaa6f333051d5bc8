"""QuantOptions from quantize's parsed options: a preset first, then what the
user chose over it (quantize and optimize both build them here)."""

from __future__ import annotations

import argparse

from agent.errors import BadInput
from controller.quantize.onnx_static import QuantOptions


def options(args: argparse.Namespace) -> QuantOptions:
    from controller.quantize.presets import PER_TENSOR_BECAUSE, preset

    base = preset(args.preset) if args.preset else {}
    keys = ("method", "per_channel", "activation_type", "weight_type", "symmetric_activations")
    chosen = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if chosen.get("activation_type") == "uint8" and "symmetric_activations" not in chosen:
        chosen["symmetric_activations"] = False  # uint8 is asked for its zero point (U8S8)
    chosen["types_chosen"] = bool(args.preset) or any(k in chosen for k in keys[2:])
    per_tensor = getattr(args, "per_tensor", False)  # a caller's args may not carry it
    if per_tensor and args.per_channel:
        raise BadInput("--per-channel and --per-tensor exclude each other")
    if per_tensor:
        chosen["per_channel"], chosen["per_tensor_reason"] = False, "--per-tensor"
    elif not chosen.get("per_channel", base.get("per_channel", True)):
        why = PER_TENSOR_BECAUSE.get(args.preset or "", "the preset")
        chosen["per_tensor_reason"] = f"--preset {args.preset}: {why}"
    if args.asymmetric_weights:
        chosen["symmetric_weights"] = False
    if args.calibration_samples is not None and args.calibration_samples < 1:
        raise BadInput("--calibration-samples must be a positive integer")
    return QuantOptions(
        **{**base, **chosen}, exclude=list(args.exclude), calibration_limit=args.calibration_samples
    )
