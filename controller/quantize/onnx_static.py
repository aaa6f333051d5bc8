"""``edgebench quantize`` for ONNX: ONNX Runtime's static quantization in QDQ
format (what the TensorRT, OpenVINO, TIDL and QNN execution providers
consume), over .npz calibration samples, on a model ``prepare.py`` made
ready. The output carries its calibration profile (``calibration.py``) and is
loaded and run once in ONNX Runtime before success is reported."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput, RunFailed, one_line
from agent.samples import check_samples
from controller.quantize import calibration
from controller.quantize.calibration import graph_inputs
from controller.quantize.macs import node_macs
from controller.quantize.prepare import prepare, working_dir
from controller.quantize.presets import DEFAULT_PER_CHANNEL

METHODS = ("minmax", "entropy", "percentile")
TYPES = ("int8", "uint8")


@dataclass
class QuantOptions:
    method: str = "minmax"
    per_channel: bool = DEFAULT_PER_CHANNEL  # presets.py: every target edgebench knows takes it
    per_tensor_reason: str | None = None  # why weights are per-tensor, when they are
    activation_type: str = "uint8"  # XNNPACK/CPU EP's asymmetric uint8 activations
    weight_type: str = "int8"
    symmetric_activations: bool = False
    # a preset or --activation-type/--symmetric-activations chose the activations; when not,
    # a task-metric --target search quantizes S8S8 (search.py's target_search says why)
    types_chosen: bool = False
    symmetric_weights: bool = True
    exclude: list[str] = field(default_factory=list)  # node names or op types kept in float
    calibration_limit: int | None = None  # samples used, the first N


def quantizable(model: Any, exclude: list[str]) -> tuple[list[str], list[str]]:
    """(names of nodes to exclude, unknown exclude entries): an entry names a node or an op type."""
    names = {n.name for n in model.graph.node}
    ops = {n.op_type for n in model.graph.node}
    unknown = [e for e in exclude if e not in names and e not in ops]
    chosen = [n.name for n in model.graph.node if n.name in exclude or n.op_type in exclude]
    return chosen, unknown


def quantize(
    model_path: Path,
    cal: dict[str, np.ndarray],
    out_path: Path,
    opts: QuantOptions,
    say: Callable[[str], None] = print,
    prepared: Path | None = None,
    cache: Path | None = None,
    candidate: bool = False,
) -> dict[str, Any]:
    """Quantize; returns the report (sizes, nodes and MACs in INT8, time). The
    sensitivity search quantizes many times: ``prepared`` reuses an earlier
    ``prepare()`` output and ``cache`` the calibrated ranges (ORT's calibration
    cache: calibration inference runs once); a ``candidate`` skips the
    calibration profile and the run check (the search scores it anyway, and
    writes its answer again as a full quantization)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if opts.method not in METHODS:
        raise BadInput(f"unknown --method {opts.method!r}; expected one of {', '.join(METHODS)}")
    t0 = time.perf_counter()
    # absolute: ORT's tools run inside a scratch directory (prepare.working_dir)
    model_path, out_path = Path(model_path).resolve(), Path(out_path).resolve()
    cache = Path(cache).resolve() if cache else None
    pre = prepared or prepare(model_path, opts.per_channel, say)
    model = onnx.load(str(pre))
    inputs = graph_inputs(model)
    check_samples(cal, inputs, "the calibration set")
    excluded, unknown = quantizable(model, opts.exclude)
    if unknown:
        raise BadInput(f"--exclude {unknown[0]!r} is neither a node name nor an op type of this model")
    reader = calibration.NpzReader(cal, inputs, opts.calibration_limit)
    qtype = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[opts.method]  # fmt: skip
    tmp = out_path.with_name(out_path.name + ".tmp")
    # ORT's quantizer warns on the root logger, e.g. per weight it cannot take per-channel
    # (a 1-D BatchNormalization scale) and quantizes per-tensor instead: not the user's concern
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with working_dir(pre.parent):  # ORT's scratch files stay out of the user's directory
            quantize_static(
                str(pre),
                str(tmp),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=opts.per_channel,
                activation_type=qtype[opts.activation_type],
                weight_type=qtype[opts.weight_type],
                nodes_to_exclude=excluded,
                calibrate_method=method,
                extra_options={
                    "ActivationSymmetric": opts.symmetric_activations,
                    "WeightSymmetric": opts.symmetric_weights,
                },
                calibration_cache_path=str(cache) if cache else None,
            )
        q = onnx.load(str(tmp))
    except (BadInput, RunFailed):
        raise
    except Exception as exc:
        raise RunFailed(f"ONNX Runtime's quantizer failed: {one_line(exc, 300)}") from None
    finally:
        logging.getLogger().setLevel(quiet)
        tmp.unlink(missing_ok=True)
    del q.metadata_props[:]  # a re-quantized model carries only its new profile
    if not candidate:
        prof = calibration.profile(opts.method, {k: v[: reader.count] for k, v in cal.items()}, q, model)
        q.metadata_props.add(key=calibration.KEY, value=json.dumps(prof))
    onnx.save(q, str(out_path))
    if not candidate:
        _verify(out_path, reader)
    report = _report(model_path, out_path, model, q, reader, excluded, opts)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report


def _verify(path: Path, reader: calibration.NpzReader) -> None:
    """The output must load and run in ONNX Runtime before it is called a success."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        reader.rewind()
        sess.run(None, reader.get_next() or {})
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise RunFailed(f"the quantized model does not run in ONNX Runtime: {one_line(exc, 300)}") from None


def _int8_nodes(q: Any) -> set[str]:
    """Nodes that run in INT8: a DequantizeLinear feeds them and every other
    input is an integer constant (a shape, an axis). QDQ: the EP fuses the Q/DQ
    around such a node; a Conv kept in float still reads a DQ'd activation but
    its float weight gives it away."""
    import onnx

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
              onnx.TensorProto.BFLOAT16}  # fmt: skip
    inits = {t.name: t.data_type for t in q.graph.initializer}
    dq_out = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    out = set()
    for n in q.graph.node:
        ins = [i for i in n.input if i]
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") or not any(i in dq_out for i in ins):
            continue
        if all(i in dq_out or (i in inits and inits[i] not in floats) for i in ins):
            out.add(n.name)
    return out


def _report(
    src: Path, out: Path, float_model: Any, q: Any, reader: calibration.NpzReader, excluded: list[str],
    opts: QuantOptions,
) -> dict[str, Any]:  # fmt: skip
    int8 = _int8_nodes(q)
    compute = [n for n in float_model.graph.node if n.op_type not in ("Constant",)]
    # a Relu/Clip the quantizer folded into its producer's range is gone from the
    # quantized graph: it runs inside that INT8 node, not in float
    kept = {n.name for n in q.graph.node}
    int8 |= {n.name for n in compute if n.op_type in ("Relu", "Clip") and n.name not in kept}
    macs = node_macs(float_model, reader.shapes)
    total_macs = sum(macs.values())
    int8_macs = sum(v for k, v in macs.items() if k in int8)
    return {
        "model": str(src),
        "output": str(out),
        "options": asdict(opts),
        "size_before_bytes": src.stat().st_size,
        "size_after_bytes": out.stat().st_size,
        "size_ratio": round(src.stat().st_size / max(1, out.stat().st_size), 3),
        "calibration_samples": reader.count,
        "nodes": len(compute),
        "nodes_int8": len(int8 & {n.name for n in compute}),
        "nodes_share_int8": round(len(int8 & {n.name for n in compute}) / max(1, len(compute)), 4),
        "convs": sum(n.op_type == "Conv" for n in compute),
        "convs_int8": sum(n.op_type == "Conv" and n.name in int8 for n in compute),
        "macs": total_macs,
        "macs_share_int8": round(int8_macs / total_macs, 4) if total_macs else None,
        "excluded": excluded,
    }
