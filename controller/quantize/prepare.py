"""A float ONNX model made ready for ONNX Runtime's static quantizer, on real
models where ORT's own pre-processing breaks:

- Constant nodes become initializers: quantize_static quantizes initializer
  weights only, and exporters such as paddle2onnx (the PP-OCR models) emit
  weights as Constant nodes, which would leave every weight in float.
- ``quant_pre_process`` runs symbolic shape inference first; it fails on the
  PP-OCR detector ("Incomplete symbolic shape inference") and classifier (an
  assertion in ``_infer_Concat``). Then ONNX's own shape inference is used,
  with one line saying so.
- Nodes without a unique name get one first (``name_nodes``): node counts,
  MACs, --exclude and --target are keyed by name.
- Per-channel weights need ``DequantizeLinear``'s ``axis``, which exists from
  opset 13: an older model is converted with ONNX's version converter first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from agent.errors import BadInput, one_line

PER_CHANNEL_MIN_OPSET = 13
_CWD_LOCK = threading.RLock()


@contextlib.contextmanager
def working_dir(path: Path) -> Iterator[None]:
    """Run ORT's quantization tools inside ``path``: its symbolic shape inference
    and optimizer write scratch files (``sym_shape_infer_temp.onnx``, external
    ``<uuid>.data``) into the current directory, which is the user's. The
    directory is the process's: one quantization at a time (a fleet's optimize
    jobs quantize from a thread per board, which restored each other's)."""
    with _CWD_LOCK:
        before = os.getcwd()
        os.chdir(path)
        try:
            yield
        finally:
            os.chdir(before)


def default_opset(model: object) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)  # type: ignore[attr-defined]


def constants_to_initializers(model: object) -> int:
    """Move tensor-valued Constant nodes into the graph's initializers; returns how many."""
    from onnx import numpy_helper

    g = model.graph  # type: ignore[attr-defined]
    keep, moved = [], 0
    for node in g.node:
        value = next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)
        if node.op_type == "Constant" and not node.domain and value is not None and len(node.attribute) == 1:
            arr = numpy_helper.to_array(value)
            g.initializer.append(numpy_helper.from_array(arr, node.output[0]))
            moved += 1
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    return moved


def name_nodes(model: object) -> int:
    """Give every unnamed (or duplicate-named) node a stable, unique name,
    ``<op_type>_<index>``: --exclude, the --target ranking, the INT8 node
    counts and the MACs per node are all keyed by node name. Returns how many."""
    g = model.graph  # type: ignore[attr-defined]
    taken = {n.name for n in g.node if n.name}
    seen: set[str] = set()
    renamed = 0
    for i, n in enumerate(g.node):
        if n.name and n.name not in seen:
            seen.add(n.name)
            continue
        base = f"{n.op_type}_{i}"
        name, k = base, 1
        while name in taken or name in seen:
            name, k = f"{base}_{k}", k + 1
        n.name = name
        seen.add(name)
        renamed += 1
    return renamed


def prepare(model_path: Path, per_channel: bool, say: Callable[[str], None]) -> Path:
    """A pre-processed copy of the model in a temporary directory (kept for the
    process's life), ready for quantize_static."""
    import onnx

    try:
        model = onnx.load(str(model_path))
    except Exception as exc:
        raise BadInput(f"{model_path.name}: not a loadable ONNX model: {one_line(exc, 200)}") from None
    named = name_nodes(model)  # first: everything after counts and selects nodes by name
    if named:
        say(f"note: {named} node(s) without a unique name named <op_type>_<index>")
    moved = constants_to_initializers(model)
    if moved:
        say(f"note: {moved} Constant node(s) moved to initializers so their weights quantize")
    opset = default_opset(model)
    if per_channel and opset < PER_CHANNEL_MIN_OPSET:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, PER_CHANNEL_MIN_OPSET)
        except Exception as exc:
            raise BadInput(
                f"per-channel quantization needs opset {PER_CHANNEL_MIN_OPSET}; converting opset {opset} "
                f"failed: {one_line(exc, 200)}; quantize per tensor instead (--per-tensor)"
            ) from None
        say(f"note: opset {opset} -> {PER_CHANNEL_MIN_OPSET} (per-channel DequantizeLinear needs an axis)")
    work = Path(tempfile.mkdtemp(prefix="edgebench-quant-"))
    src, out = work / "in.onnx", work / "pre.onnx"
    onnx.save(model, str(src))
    # ORT's pre-processing logs every removed initializer; the user gets one line instead
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with working_dir(work):
            _pre_process(model, src, out, say)
    finally:
        logging.getLogger().setLevel(quiet)
    pre = onnx.load(str(out))
    if name_nodes(pre):  # ORT's optimizer may add nodes of its own without a name
        onnx.save(pre, str(out))
    return out


def _pre_process(model: object, src: Path, out: Path, say: Callable[[str], None]) -> None:
    import onnx
    from onnxruntime.quantization import quant_pre_process

    try:
        quant_pre_process(str(src), str(out))
    except Exception as exc:  # ORT's symbolic shape inference: assertion or "incomplete"
        why = one_line(exc, 80) or type(exc).__name__
        say(f"note: symbolic shape inference failed ({why}); using ONNX shape inference")
        try:
            quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
        except Exception as exc2:
            say(f"note: pre-processing failed ({one_line(exc2, 80)}); quantizing the model as loaded")
            onnx.save(onnx.shape_inference.infer_shapes(model), str(out))
