"""Calibration coverage: does the field data stay inside what the quantized
model was calibrated on? Any quantized model, whoever quantized it:

- activation ranges come from the model itself (``QuantizeLinear`` scales
  and zero points of a QDQ ONNX; each tensor's quantization parameters in an
  int8 .tflite), and the model runs on the field samples on this host
  (``clipping.py``, ``clipping_tflite.py``): per tensor, the share of values
  it clips and the effective bits the field values use of its 8;
- input statistics come from the calibration profile ``edgebench quantize``
  writes (``calibration.py``), or from ``--calibration CAL.npz``; without
  either the report says they are not known, and clipping still works.

Figures (docs/usage.md says the same):

- ``clip_share`` of a tensor: its field values outside its range by more
  than half a step. A tensor with few values per sample (pooled means,
  squeeze-excite vectors) clips ``2/(N+1)`` by chance alone after N
  calibration samples (a fresh sample is the new minimum or maximum of N+1),
  so that allowance is taken off before the gate judges it.
- with ``--calibration``, each tensor's clip share on (the first 16 of) the
  calibration samples is its baseline, taken off too: a Clip folded into a
  range (ReLU6, which a model without edgebench's profile cannot tell apart)
  or a calibration method that clips on purpose (entropy, percentile) clips
  there as well.
- ``global_clip_share``: all clipped values over all activation values. A
  second number only: big feature maps dilute one collapsing layer.
- ``effective_bits``: log2 of the levels the middle 99.8% of the field values
  span; far below 8 says the calibrated range is too wide for this field.
- per input: the mean over channels of each channel's mean shift (in
  calibration standard deviations) and the worst channel's shift; std ratios;
  the share of values outside the calibration's 1st..99th percentiles, which
  is about 2% for data like the calibration set and is not clipping.

Gates: ``max_clip_share`` fails when ANY input or layer clips more (beyond
its chance share and its calibration-set baseline); ``min_effective_bits``
when any layer uses fewer bits.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.samples import check_names
from controller.quantize.calibration import activation_ranges, input_profile, read_profile

SHIFT_SD = 1.0  # a channel mean this many calibration std away reads as darker/brighter
CONTRAST = (0.6, 1.6)  # field std over calibration std outside this: flatter / noisier
# share of values outside the calibration's p01..p99: 2 % expected, but a page's
# paper tone moves most of its pixels at once, so only a large share says more
OUTSIDE = 0.25
TOP_LAYERS = 5
CLIP_WARN = 0.005  # global: the INT8 model clips this much of everything it sees
CLIP_WARN_LAYER = 0.05  # one tensor clips this much beyond its chance allowance
BITS_WARN = 4.0  # a layer left this few effective bits: the calibrated range is far too wide
SMALL_TENSOR = 1024  # values per sample below this: a vector (pooled, squeeze-excite), chance applies
WORST_KEYS = ("tensor", "clip_share", "excess_share", "chance_share", "baseline_share")
BASELINE_SAMPLES = 16  # calibration samples run for each tensor's own clip share


def _input_report(name: str, field: dict[str, Any], cal: dict[str, Any] | None) -> dict[str, Any]:
    if cal is None:
        return {"name": name, "known": False, "differs": False, "how": ""}
    cm, cs = np.asarray(cal["mean"]), np.maximum(np.asarray(cal["std"]), 1e-12)
    fm, fs = np.asarray(field["mean"]), np.asarray(field["std"])
    shift, ratio = (fm - cm) / cs, fs / cs
    mean_shift = float(np.mean(shift))
    words = []
    if field["outside_share"] > OUTSIDE:
        words.append(f"{field['outside_share']:.0%} of values outside the calibration's p01..p99")
    if mean_shift <= -SHIFT_SD:
        words.append(f"darker (mean over channels {mean_shift:+.2f} sd)")
    elif mean_shift >= SHIFT_SD:
        words.append(f"brighter (mean over channels {mean_shift:+.2f} sd)")
    if float(np.mean(ratio)) < CONTRAST[0]:
        words.append(f"flatter (std x{float(np.mean(ratio)):.2f})")
    elif float(np.mean(ratio)) > CONTRAST[1]:
        words.append(f"noisier (std x{float(np.mean(ratio)):.2f})")
    return {
        "name": name,
        "known": True,
        "mean_shift_sd": [round(float(x), 4) for x in shift],  # per channel
        "channel_mean_shift_sd": round(mean_shift, 4),
        "worst_channel_shift_sd": round(float(max(shift, key=abs)), 4),
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


def _onnx_rows(
    model: Path, field: dict[str, np.ndarray], prof: dict | None, notes: list[str]
) -> tuple[list, list]:
    import onnx

    from controller.quantize.calibration import graph_inputs
    from controller.quantize.clipping import onnx_clipping

    try:
        m = onnx.load(str(model), load_external_data=False)
    except Exception:
        raise BadInput(f"{model.name}: not an ONNX protobuf") from None
    names = list(graph_inputs(m))
    _check_field(field, names)
    ranges = activation_ranges(m)
    qop = sorted({n.op_type for n in m.graph.node if n.op_type.startswith("QLinear")})
    if qop:
        notes.append(f"QOperator nodes ({', '.join(qop)}) keep their output ranges inside the op: "
                     "only tensors a QuantizeLinear quantizes are checked")  # fmt: skip
    if not ranges:
        raise BadInput(f"{model.name} has no per-tensor QuantizeLinear on an activation: "
                       "coverage needs a QDQ-quantized model")  # fmt: skip
    if prof is not None:
        clamps = prof.get("clamps") or {}
    else:
        # no float graph to say which Relu/Clip the quantizer folded away: a range
        # whose floor is exactly 0 is taken as one (values below it are its clamp)
        clamps = {k: [0.0, None] for k, r in ranges.items() if r["min"] == 0.0}
        if clamps:
            notes.append(f"{len(clamps)} range(s) start at exactly 0: taken as a folded ReLU, "
                         "values below 0 there are not counted as clipping")  # fmt: skip
    return onnx_clipping(model, field, ranges, clamps), names


def _check_field(field: dict[str, np.ndarray], names: list[str], what: str = "the field set") -> None:
    check_names(field, names, what, extra_ok=True)


def _rows(
    model: Path, arrays: dict[str, np.ndarray], prof: dict | None, notes: list[str]
) -> tuple[list[dict], list[str]]:
    """(one row per quantized tensor, the model's input names), for either format."""
    if model.suffix.lower() == ".tflite":
        from controller.quantize.clipping_tflite import input_names, tflite_clipping

        names = input_names(model)
        _check_field(arrays, names)
        notes.append("a .tflite holds integers: clipping inside the graph is counted as saturation "
                     "(values at the type's limits, those that round there included)")  # fmt: skip
        return tflite_clipping(model, arrays), names
    return _onnx_rows(model, arrays, prof, notes)


def coverage(
    model: Path,
    field: dict[str, np.ndarray],
    max_clip_share: float | None = None,
    min_effective_bits: float | None = None,
    calibration: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The coverage report of ``field`` on ``model`` (.onnx QDQ or int8 .tflite).
    ``calibration``: samples whose statistics stand in for the profile's (or give
    them, for a model that carries none)."""
    if model.suffix.lower() not in (".onnx", ".tflite"):
        raise BadInput(f"{model.name}: unknown model format (expected a quantized .onnx or .tflite)")
    prof = read_profile(model)
    notes: list[str] = []
    acts, names = _rows(model, field, prof, notes)
    baseline: dict[str, float] | None = None
    if calibration is not None:
        _check_field(calibration, names, "the calibration set")
        # the share each tensor clips on the calibration set itself: what a Clip folded
        # into a range (ReLU6), or a calibration method that clips on purpose (entropy,
        # percentile), gives anyway; the field is judged on what it clips beyond that
        part = {k: v[:BASELINE_SAMPLES] for k, v in calibration.items()}
        baseline = {r["tensor"]: r["clip_share"] for r in _rows(model, part, prof, [])[0]}
    elif prof is None:
        notes.append("without the float graph, a Clip the quantizer folded into a range (ReLU6) cannot be "
                     "told from clipping: --calibration CAL.npz measures each tensor's share on the "
                     "calibration set and judges the field beyond it")  # fmt: skip
    if calibration is not None:
        cal_inputs = {k: input_profile(calibration[k]) for k in names}
        n = int(next(iter(calibration.values())).shape[0])
        cal = {"source": "--calibration", "method": None, "samples": n}
    elif prof is not None:
        cal_inputs = prof.get("inputs") or {}
        cal = {"source": "profile", "method": prof.get("method"), "samples": prof.get("samples")}
    else:
        cal_inputs = {}
        cal = {"source": None, "method": None, "samples": None}
        notes.append("input statistics are not known: the model carries no calibration profile "
                     "(give --calibration CAL.npz); clipping is still measured")  # fmt: skip
    inputs = []
    for name in names:
        c = cal_inputs.get(name)
        fp = input_profile(field[name])
        fp["outside_share"] = _outside_share(field[name], c) if c else None
        inputs.append(_input_report(name, fp, c))
    n_cal = cal["samples"]
    for a in acts:
        a["kind"] = "input" if a["tensor"] in names else "layer"
        small = a["per_sample"] < SMALL_TENSOR and a["kind"] == "layer"
        a["chance_share"] = round(2 / (n_cal + 1), 6) if small and n_cal else 0.0
        a["judged"] = not (small and not n_cal)  # a vector's chance share needs the calibration size
        a["baseline_share"] = baseline.get(a["tensor"], 0.0) if baseline is not None else None
        allowance = max(a["chance_share"], a["baseline_share"] or 0.0)
        a["excess_share"] = round(max(0.0, a["clip_share"] - allowance), 6)
    if any(not a["judged"] for a in acts):
        notes.append("tensors with few values per sample are listed but not gated: the calibration "
                     "size, which sets the share they clip by chance, is not known")  # fmt: skip
    # "clips most": by the values clipped, so a squeeze-excite's handful does not
    # outrank a feature map that clips thousands
    acts.sort(key=lambda r: (-r["clipped"], -r["clip_share"]))
    values = sum(a["values"] for a in acts)
    global_share = round(sum(a["clipped"] for a in acts) / values, 6) if values else 0.0
    judged = [a for a in acts if a["judged"]]
    worst = max(judged, key=lambda a: a["excess_share"], default=None)
    bits = [a for a in acts if a["effective_bits"] is not None]
    fewest = min(bits, key=lambda a: a["effective_bits"], default=None)
    warnings = [
        f"input {r['name']} differs from the calibration set: {r['how']}" for r in inputs if r["differs"]
    ]
    over = [a for a in judged if a["excess_share"] > CLIP_WARN_LAYER]
    clipping = over
    excess = sum(a["excess_share"] * a["values"] for a in judged) / values if values else 0.0
    if not over and excess > CLIP_WARN:
        clipping = [a for a in acts[:TOP_LAYERS] if a["clipped"]]
    if clipping:
        listed = ", ".join(f"{a['tensor']} {a['clip_share']:.1%}" for a in clipping[:TOP_LAYERS])
        warnings.append(f"layers clip field values outside their calibrated range: {listed}")
    narrow = sorted((a for a in bits if a["effective_bits"] < BITS_WARN), key=lambda a: a["effective_bits"])
    if narrow:
        listed = ", ".join(f"{a['tensor']} {a['effective_bits']:.1f}" for a in narrow[:TOP_LAYERS])
        warnings.append(f"calibrated ranges too wide for the field (effective bits of 8): {listed}")
    gates = []
    if max_clip_share is not None:
        gates.append(_clip_gate(judged, worst, max_clip_share, global_share))
    if min_effective_bits is not None:
        gates.append(_bits_gate(bits, fewest, min_effective_bits))
    return {
        "model": str(model),
        "calibration": cal,
        "samples": int(next(iter(field.values())).shape[0]),
        "inputs": inputs,
        "activations": acts,
        "global_clip_share": global_share,
        "worst_clip": {k: worst[k] for k in WORST_KEYS} if worst else None,
        "fewest_bits": {"tensor": fewest["tensor"], "effective_bits": fewest["effective_bits"]}
        if fewest
        else None,
        "warnings": warnings,
        "notes": notes,
        "gates": gates,
        "passed": all(g["passed"] for g in gates) if gates else None,
    }


def _clip_gate(judged: list[dict], worst: dict | None, threshold: float, global_share: float) -> dict:
    """Fails when ANY input or layer clips more than ``threshold`` beyond its chance share."""
    failing = [a for a in judged if a["excess_share"] > threshold]
    w = max(failing, key=lambda a: a["excess_share"]) if failing else worst
    what = f"{w['kind']} {w['tensor']} clips {w['clip_share']:.3%}" if w else "nothing is quantized"
    if w and w["chance_share"]:
        what += f" ({w['chance_share']:.1%} by chance)"
    if w and w["baseline_share"]:
        what += f" ({w['baseline_share']:.2%} on the calibration set)"
    return {
        "name": "max_clip_share",
        "passed": not failing,
        "value": w["excess_share"] if w else 0.0,
        "tensor": w["tensor"] if w else None,
        "threshold": threshold,
        "failing": [a["tensor"] for a in failing],
        "global_clip_share": global_share,
        "message": f"{len(failing)} input(s)/layer(s) over {threshold:.3%}; worst: {what}; "
        f"{global_share:.3%} of all activation values",
    }


def _bits_gate(bits: list[dict], fewest: dict | None, threshold: float) -> dict:
    """Fails when any layer's field values use fewer than ``threshold`` effective bits."""
    failing = [a for a in bits if a["effective_bits"] < threshold]
    low = f"; fewest: {fewest['tensor']} {fewest['effective_bits']:g}" if fewest else ""
    return {
        "name": "min_effective_bits",
        "passed": not failing,
        "value": fewest["effective_bits"] if fewest else None,
        "tensor": fewest["tensor"] if fewest else None,
        "threshold": threshold,
        "failing": [a["tensor"] for a in failing],
        "message": f"{len(failing)} layer(s) under {threshold:g} effective bits{low}",
    }


def line(rep: dict[str, Any]) -> str:
    """The one-line verdict validate prints too; the sample count is the field's."""
    n = rep["samples"]
    if rep["warnings"]:
        return f"coverage WARNING ({n} field samples): " + "; ".join(rep["warnings"])
    w, b = rep["worst_clip"], rep["fewest_bits"]
    parts = [f"coverage: no warning on {n} field samples"]
    if w:
        base = f" ({w['baseline_share']:.2%} on the calibration set)" if w.get("baseline_share") else ""
        parts.append(f"worst clipping {w['tensor']} {w['clip_share']:.2%}{base}")
    parts.append(f"{rep['global_clip_share']:.3%} of all activation values clipped")
    if b:
        parts.append(f"fewest effective bits {b['effective_bits']:g} ({b['tensor']})")
    return "; ".join(parts)


def for_validate(model: Path, inputs: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """validate's coverage line, for a model that carries a calibration profile;
    None (and one note) on a host without the onnx package to read it with."""
    need = "ai_edge_litert" if model.suffix.lower() == ".tflite" else "onnx"
    if importlib.util.find_spec(need) is None:
        print(f"edgebench: note: coverage needs the {need} package (pip install 'edgebench[controller]')")
        return None
    if read_profile(model) is None:
        return None
    rep = coverage(model, inputs)
    print(line(rep))
    return {k: rep[k] for k in ("global_clip_share", "worst_clip", "fewest_bits", "warnings", "inputs")}
