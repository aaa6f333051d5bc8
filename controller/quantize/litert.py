"""``edgebench quantize`` for a float .tflite: Google's ai-edge-quantizer
(static INT8 weights and activations, recipe ``static_wi8_ai8``; it installs
without TensorFlow), calibrated on the same .npz samples as the ONNX path.
The model must have a signature (TensorFlow's converter writes
``serving_default``); the calibration profile goes in a sidecar
``<model>.calibration.json``."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput, RunFailed, one_line
from agent.samples import check_samples
from controller.quantize import calibration
from controller.quantize.onnx_static import QuantOptions


def quantize(
    model_path: Path,
    cal: dict[str, np.ndarray],
    out_path: Path,
    opts: QuantOptions,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError:
        raise BadInput(
            "quantizing a .tflite needs ai-edge-quantizer: pip install ai-edge-quantizer"
        ) from None
    from ai_edge_litert.interpreter import Interpreter

    if opts.exclude or not opts.per_channel or opts.method != "minmax" or opts.activation_type != "int8":
        say("note: a .tflite is quantized with ai-edge-quantizer's static int8 recipe (per-channel "
            "weights); --exclude, --per-tensor, --method and type options apply to ONNX")  # fmt: skip
    t0 = time.perf_counter()
    it = Interpreter(model_path=str(model_path))
    sigs = it.get_signature_list()
    if not sigs:
        raise BadInput(f"{model_path.name} has no signature; ai-edge-quantizer addresses models by signature")
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
    runner = it.get_signature_runner(key)
    details = runner.get_input_details()
    declared = {k: [int(x) for x in d["shape"]] for k, d in details.items()}
    n, shapes = check_samples(cal, declared, "the calibration set", extra_ok=True)
    n = min(n, opts.calibration_limit) if opts.calibration_limit else n
    samples = [
        {k: cal[k][i].reshape(shapes[k]).astype(details[k]["dtype"]) for k in details} for i in range(n)
    ]
    try:
        with warnings.catch_warnings():  # calibration keeps every tensor on purpose; LiteRT warns about it
            warnings.simplefilter("ignore", UserWarning)
            q = quantizer.Quantizer(str(model_path), recipe.static_wi8_ai8())
            q.quantize(q.calibrate({key: samples}), serialize_to_path=str(out_path))
    except Exception as exc:
        raise RunFailed(f"ai-edge-quantizer failed: {one_line(exc, 300)}") from None
    try:
        check = Interpreter(model_path=str(out_path))
        check.allocate_tensors()
    except Exception as exc:
        out_path.unlink(missing_ok=True)
        raise RunFailed(f"the quantized model does not load in LiteRT: {one_line(exc, 300)}") from None
    prof = calibration.profile("minmax", {k: v[:n] for k, v in cal.items()}, None)
    out_path.with_name(out_path.name + ".calibration.json").write_text(json.dumps(prof))
    return {
        "model": str(model_path),
        "output": str(out_path),
        "options": {
            "method": "minmax",
            "activation_type": "int8",
            "weight_type": "int8",
            "per_channel": True,
            "symmetric_activations": False,
            "symmetric_weights": True,
            "engine": "ai-edge-quantizer",
        },  # fmt: skip
        "size_before_bytes": model_path.stat().st_size,
        "size_after_bytes": out_path.stat().st_size,
        "size_ratio": round(model_path.stat().st_size / max(1, out_path.stat().st_size), 3),
        "calibration_samples": n,
        "seconds": round(time.perf_counter() - t0, 3),
    }
