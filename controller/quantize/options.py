"""QuantOptions from quantize's parsed options: a preset first, then what the
user chose over it (quantize and optimize both build them here)."""

from __future__ import annotations

import argparse

from agent.errors import BadInput
from controller.quantize.onnx_static import QuantOptions


def options(args: argparse.Namespace) -> QuantOptions:
    from controller.quantize.presets import preset

    base = preset(args.preset) if args.preset else {}
    keys = ("method", "per_channel", "activation_type", "weight_type", "symmetric_activations")
    chosen = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if args.asymmetric_weights:
        chosen["symmetric_weights"] = False
    if args.calibration_samples is not None and args.calibration_samples < 1:
        raise BadInput("--calibration-samples must be a positive integer")
    return QuantOptions(
        **{**base, **chosen}, exclude=list(args.exclude), calibration_limit=args.calibration_samples
    )
