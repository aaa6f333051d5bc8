"""Calibration coverage: does the field data stay inside what the quantized
model was calibrated on? Two views, from the calibration profile the model
carries (``calibration.py``):

- inputs: each channel's mean shift in calibration standard deviations, its
  contrast (field std over calibration std), and the share of field values
  outside the calibration's 1st..99th percentiles (about 2 % when the field
  looks like the calibration set);
- activations: the quantized model run on the field samples with every
  calibrated tensor as an extra output (ONNX Runtime, on this host: clipping
  is a property of the calibrated ranges and the data, not of the board's
  arithmetic); the share of each tensor's values outside its calibrated range
  is the share the INT8 model clips.

A warning names the inputs that are darker, brighter, flatter or noisier than
the calibration set and the layers that clip most, before accuracy drifts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.samples import check_names, check_samples
from controller.quantize.calibration import input_profile, read_profile

SHIFT_SD = 1.0  # a channel mean this many calibration std away reads as darker/brighter
CONTRAST = (0.6, 1.6)  # field std over calibration std outside this: flatter / noisier
# share of values outside the calibration's p01..p99: 2 % expected, but a page's
# paper tone moves most of its pixels at once, so only a large share says more
OUTSIDE = 0.25
TOP_LAYERS = 5
CLIP_WARN = 0.005  # over all activation values: the INT8 model clips this much of what it sees


def _input_report(name: str, field: dict[str, Any], cal: dict[str, Any]) -> dict[str, Any]:
    cm, cs = np.asarray(cal["mean"]), np.maximum(np.asarray(cal["std"]), 1e-12)
    fm, fs = np.asarray(field["mean"]), np.asarray(field["std"])
    shift = (fm - cm) / cs
    ratio = fs / cs
    words = []
    if field["outside_share"] > OUTSIDE:
        words.append(f"{field['outside_share']:.0%} of values outside the calibration's p01..p99")
    if float(np.mean(shift)) <= -SHIFT_SD:
        words.append(f"darker (mean {float(np.mean(shift)):+.2f} sd)")
    elif float(np.mean(shift)) >= SHIFT_SD:
        words.append(f"brighter (mean {float(np.mean(shift)):+.2f} sd)")
    if float(np.mean(ratio)) < CONTRAST[0]:
        words.append(f"flatter (std x{float(np.mean(ratio)):.2f})")
    elif float(np.mean(ratio)) > CONTRAST[1]:
        words.append(f"noisier (std x{float(np.mean(ratio)):.2f})")
    return {
        "name": name,
        "mean_shift_sd": [round(float(x), 4) for x in shift],
        "std_ratio": [round(float(x), 4) for x in ratio],
        "outside_p01_p99_share": field["outside_share"],
        "differs": bool(words),
        "how": ", ".join(words),
    }


def _outside_share(x: np.ndarray, cal: dict[str, Any]) -> float:
    axis = cal.get("axis")
    lo, hi = np.asarray(cal["p01"]), np.asarray(cal["p99"])
    xf = np.asarray(x, dtype=np.float64)
    if axis is None:
        flat = xf.reshape(1, -1)
    else:
        flat = np.moveaxis(xf, axis + 1, 0).reshape(len(lo), -1)
    out = (flat < lo[:, None]) | (flat > hi[:, None])
    return round(float(out.mean()), 4)


def _activation_clips(
    model: Path, field: dict[str, np.ndarray], ranges: dict[str, dict[str, float]], clamps: dict[str, list]
) -> list[dict]:
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(model))
    have = {o.name for o in m.graph.output}
    for name in ranges:
        if name not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    inits = {t.name for t in m.graph.initializer}
    declared = {
        i.name: [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in i.type.tensor_type.shape.dim]
        for i in m.graph.input if i.name not in inits
    }  # fmt: skip
    n, shapes = check_samples(field, declared, "the field set", extra_ok=True)
    clipped = dict.fromkeys(ranges, 0)
    total = dict.fromkeys(ranges, 0)
    for i in range(n):
        feeds = {k: np.ascontiguousarray(field[k][i].reshape(shapes[k])) for k in declared}
        for name, y in zip(outs, sess.run(None, feeds), strict=True):
            r = ranges.get(name)
            if r is None:
                continue
            y = np.asarray(y)
            c = clamps.get(name)
            if c is not None:  # the Relu/Clip folded into this range: its own clamp is not clipping
                y = np.clip(y, -np.inf if c[0] is None else c[0], np.inf if c[1] is None else c[1])
            # within half a step of the edge the value rounds to the edge anyway: not clipped
            half = 0.5 * float(r.get("scale") or 0.0)
            clipped[name] += int(np.count_nonzero((y < r["min"] - half) | (y > r["max"] + half)))
            total[name] += y.size
    rows = [{"tensor": k, "clip_share": round(clipped[k] / total[k], 6) if total[k] else 0.0,
             "values": total[k], "clipped": clipped[k],
             "range": [ranges[k]["min"], ranges[k]["max"]]} for k in ranges]  # fmt: skip
    # "clips most": by the values clipped, so a squeeze-excite's handful of means
    # does not outrank a feature map that clips thousands
    rows.sort(key=lambda r: (-r["clipped"], -r["clip_share"]))
    return rows


def coverage(
    model: Path, field: dict[str, np.ndarray], max_clip_share: float | None = None
) -> dict[str, Any]:
    prof = read_profile(model)
    if prof is None:
        raise BadInput(f"{model.name} carries no calibration profile: quantize it with `edgebench quantize`")
    check_names(field, list(prof["inputs"]), "the field set", extra_ok=True)
    inputs = []
    for name, cal in prof["inputs"].items():
        fp = input_profile(field[name])
        fp["outside_share"] = _outside_share(field[name], cal)
        inputs.append(_input_report(name, fp, cal))
    acts = (
        _activation_clips(model, field, prof["activations"], prof.get("clamps") or {})
        if prof.get("activations")
        else []
    )
    # the gate's figure: the share of all activation values the INT8 model clips;
    # a small tensor (a squeeze-excite's per-channel means) clips a large share of
    # few values, which the per-layer list shows but does not drive the verdict
    values = sum(a["values"] for a in acts)
    worst = round(sum(a["clipped"] for a in acts) / values, 6) if values else 0.0
    warnings = [
        f"input {r['name']} differs from the calibration set: {r['how']}" for r in inputs if r["differs"]
    ]
    clipping = [a for a in acts[:TOP_LAYERS] if a["clipped"]]
    if clipping and worst > CLIP_WARN:
        listed = ", ".join(f"{a['tensor']} {a['clip_share']:.1%}" for a in clipping)
        warnings.append(f"layers clip field values outside their calibrated range: {listed}")
    gate = None
    if max_clip_share is not None:
        passed = worst <= max_clip_share
        gate = {"name": "max_clip_share", "passed": passed, "value": worst, "threshold": max_clip_share,
                "message": f"the INT8 model clips {worst:.3%} of the activation values "
                           f"({'within' if passed else 'over'} {max_clip_share:.3%})"}  # fmt: skip
    return {
        "model": str(model),
        "calibration": {"method": prof.get("method"), "samples": prof.get("samples")},
        "samples": int(next(iter(field.values())).shape[0]),
        "inputs": inputs,
        "activations": acts,
        "clip_share": worst,
        "warnings": warnings,
        "gate": gate,
        "passed": gate["passed"] if gate else None,
    }


def line(rep: dict[str, Any]) -> str:
    """The one-line verdict validate prints too."""
    if not rep["warnings"]:
        n, share = rep["calibration"]["samples"], rep["clip_share"]
        inside = f"field data inside the calibration profile ({n} samples)"
        return f"coverage: {inside}; {share:.3%} of activation values clipped"
    return "coverage WARNING: " + "; ".join(rep["warnings"])
