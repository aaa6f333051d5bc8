"""A validate run in the worker process: every reference sample once, through
the runner the spec opened (same runtime, accelerator, providers, delegate
and options as a bench), each output dequantized when the runtime hands back
integers, compared with the reference as it arrives.

The cold first inference (sample 0) is timed apart; every sample is then
timed on its own (``iterations.npy``, measured phase), so power aligns with
inferences as in a bench. Metrics are computed between inferences, never
inside the timed span.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent import rundir
from agent.clock import now_ns
from agent.errors import BadInput
from agent.messages import Phase, Progress
from agent.rundir import MEASURED, WARMUP, IterationLog
from agent.runtimes.base import Runner
from agent.runtimes.inputs import quantize as quantize_array
from agent.samples import shape_text
from agent.spec import RunSpec, ValidateSpec
from agent.stats import latency_summary_ms
from agent.store.paths import locate_artifact
from agent.validate import boxfile
from agent.validate.boxes import Layout, match
from agent.validate.decode import DECODERS, Detections, check_layout, decode, input_hw_of
from agent.validate.metrics import OutputStats, sample_metrics
from agent.validate.reference import Reference, load_npz

PROGRESS_S = 0.5


def dequantize(y: np.ndarray, quant: tuple[float, int] | list[float] | None) -> np.ndarray:
    if quant is None:
        return y
    scale, zero_point = float(quant[0]), float(quant[1])
    return (y.astype(np.float32) - zero_point) * scale


def load_reference(spec: RunSpec, run_dir: Path) -> Reference:
    fsha = (spec.validation or ValidateSpec()).float_model_sha256
    if fsha:
        from agent.validate.float_ref import FloatReference

        inputs = load_npz(locate_artifact(run_dir, spec.inputs_sha256 or "", "inputs"), "the inputs file")
        return FloatReference(locate_artifact(run_dir, fsha, "float model"), inputs)
    arrays = load_npz(locate_artifact(run_dir, spec.reference_sha256 or "", "reference"), "the reference")
    extra = None
    if spec.inputs_sha256:
        extra = load_npz(locate_artifact(run_dir, spec.inputs_sha256, "inputs"), "the inputs file")
    return Reference.from_arrays(arrays, extra)


def validate_samples(
    runner: Runner, spec: RunSpec, run_dir: Path, send: Callable[[dict], None], part: dict
) -> Any:
    """Fill ``part`` with latency, first inference, ``validation{}`` and
    ``inputs[]``; return sample 0's feeds (for the placement pass)."""
    vspec = spec.validation or ValidateSpec()
    ref = load_reference(spec, run_dir)
    outs = runner.output_specs()
    names = [o.name for o in outs]
    shapes = ref.fit({i.name: list(i.declared_shape) or i.shape for i in runner.input_specs()}, names)
    runner.resize_inputs(shapes)
    layouts: dict[str, Layout | None] = {}  # None: a decoder (yolov8, ...)
    for name, text in vspec.boxes.items():
        if name not in names:
            raise BadInput(f"--boxes {name}: the model has no such output; outputs: {', '.join(names)}")
        check_layout(text)
        layouts[name] = None if text in DECODERS else Layout.parse(text)
    input_hw = next((hw for hw in (input_hw_of(shapes[i.name]) for i in runner.input_specs()) if hw), None)
    detections: dict[str, list[Detections]] = {n: [] for n in layouts}
    quant = {o.name: o.quantization or vspec.output_quantization.get(o.name) for o in outs}
    # a quantized model's integer inputs take float reference samples quantized with their own parameters
    qin = {
        i.name: (np.dtype(i.dtype), i.quantization)
        for i in runner.input_specs()
        if i.quantization is not None
        and np.dtype(i.dtype).kind in "iu"
        and ref.inputs[i.name].dtype.kind == "f"
    }

    def sample(k: int) -> Any:
        arrays = ref.feeds(k, shapes)
        for name, (dtype, (scale, zp)) in qin.items():
            arrays[name] = quantize_array(arrays[name], dtype, scale, zp)
        return runner.feeds(arrays)

    stats = {n: OutputStats(n) for n in names}
    kept: dict[str, list[np.ndarray]] = {n: [] for n in names} if vspec.keep_outputs else {}

    first_feeds = sample(0)
    first_run = getattr(runner, "first_run", runner.run)
    t0 = now_ns()
    first_run(first_feeds)  # cold: lazy allocation and kernel selection, timed apart
    t1 = now_ns()
    part["first_inference_ms"] = (t1 - t0) / 1e6

    rows = np.empty((ref.samples + 1, 3), dtype=np.int64)
    rows[0] = (t0, t1, WARMUP)
    lat = np.empty(ref.samples, dtype=np.int64)
    send(Phase("measure", now_ns()).to_dict())
    next_progress = time.monotonic() + PROGRESS_S
    start = now_ns()
    for i in range(ref.samples):
        feeds = first_feeds if i == 0 else sample(i)
        a = now_ns()
        ys = runner.run(feeds)
        b = now_ns()
        rows[i + 1] = (a, b, MEASURED)
        lat[i] = b - a
        fitted = {
            name: _fit_output(name, dequantize(np.asarray(y), quant[name]), ref.outputs[name][i])
            for name, y in zip(names, ys, strict=True)
        }
        for name, y in fitted.items():
            r = ref.outputs[name][i]
            m = sample_metrics(y, r, vspec.mask_threshold)
            if name in layouts:
                m.update(_boxes(name, vspec, layouts[name], fitted, ref, i, input_hw, detections))
            stats[name].add(m)
            if name in kept:
                kept[name].append(y)
        if time.monotonic() >= next_progress:
            el = (b - start) / 1e9
            send(Progress(b, i + 1, el, None, (i + 1) / el if el > 0 else 0.0).to_dict())
            next_progress = time.monotonic() + PROGRESS_S
    end = int(rows[-1, 1])

    log = IterationLog(run_dir / rundir.ITERATIONS)
    try:
        log.append(rows)
    finally:
        log.close()
    if kept:
        np.savez(run_dir / rundir.OUTPUTS, **{n: np.stack(v) for n, v in kept.items()})
    if detections:
        boxfile.save(run_dir / rundir.BOXES, detections, input_hw)
    span_s = (end - start) / 1e9
    worst = [w for s in stats.values() for w in s.worst(vspec.worst)]
    part.update(
        latency_ms=latency_summary_ms(lat),
        iterations=ref.samples,
        duration_s=span_s,
        throughput_ips=ref.samples / span_s if span_s > 0 else 0.0,
        measure_start_ns=start,
        measure_end_ns=end,
        inputs=[{"name": k, "shape": shapes[k], "dtype": str(ref.inputs[k].dtype)} for k in ref.inputs],
        validation={
            "samples": ref.samples,
            "mask_threshold": vspec.mask_threshold,
            "outputs": [s.summary() for s in stats.values()],
            "worst": worst,
            "dequantized": sorted(n for n, q in quant.items() if q is not None),
            "quantized_inputs": sorted(qin),
            "outputs_kept": bool(kept),
            "boxes": {
                n: {"layout": vspec.boxes[n], "detections": sum(len(d) for d in v)}
                for n, v in detections.items()
            },  # fmt: skip
        },
    )
    return first_feeds


def _boxes(
    name: str,
    vspec: ValidateSpec,
    layout: Layout | None,
    fitted: dict[str, np.ndarray],
    ref: Reference,
    i: int,
    input_hw: tuple[int, int] | None,
    detections: dict[str, list[Detections]],
) -> dict[str, float]:
    """Sample i's boxes: the device's decoded and kept for boxes.npz; matched
    against the reference's (decoded the same way) for recall and precision."""
    text = vspec.boxes[name]
    dev = decode(text, fitted, name, vspec.box_score, vspec.nms_iou, vspec.max_det, input_hw)
    detections[name].append(dev)
    if layout is not None:  # rows: matched as they come, as before decoders
        return match(fitted[name], ref.outputs[name][i], layout, vspec.box_iou, vspec.box_score)
    refs = {n: ref.outputs[n][i] for n in fitted}
    want = decode(text, refs, name, vspec.box_score, vspec.nms_iou, vspec.max_det, input_hw)
    return match(dev.rows(), want.rows(), ROWS, vspec.box_iou, vspec.box_score)


ROWS = Layout.parse("xyxy,score,class")  # Detections.rows()


def _fit_output(name: str, y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The device's output in the reference sample's shape (a batch axis of 1
    either side is fine); a different size is a reference that does not fit."""
    if y.size != ref.size:
        raise BadInput(
            f"output {name!r}: the device gives {shape_text(y.shape)}, "
            f"the reference has samples of {shape_text(ref.shape)}"
        )
    return y.reshape(ref.shape)
