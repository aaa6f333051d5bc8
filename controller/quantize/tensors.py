"""Intermediate tensors of an ONNX model, read by ONNX Runtime with them added as
graph outputs: one sample at a time, so memory stays bounded by one sample's
chosen tensors (the hazard reading and the search's per-tensor error)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from agent.errors import BadInput, one_line


def read(path: Path, names: list[str], feeds: list[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """For each feed, ``{tensor: value}`` of the ``names`` the model has (others are skipped)."""
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(path))
    produced = {o for n in m.graph.node for o in n.output} | {i.name for i in m.graph.input}
    known = {o.name for o in m.graph.output}
    m.graph.output.extend([onnx.ValueInfoProto(name=t) for t in names if t in produced and t not in known])
    try:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BadInput(f"{Path(path).name} does not load in ONNX Runtime: {one_line(exc, 200)}") from None
    wanted = [o.name for o in sess.get_outputs() if o.name in set(names)]
    for feed in feeds:
        yield dict(zip(wanted, sess.run(wanted, feed), strict=True))


def sqnr_db(ref: np.ndarray, x: np.ndarray) -> float:
    """Signal to quantization noise of ``x`` against ``ref``, in dB (inf when equal)."""
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    e = r - np.asarray(x, dtype=np.float64).reshape(-1)
    noise = float(e @ e)
    return float("inf") if noise == 0 else 10.0 * float(np.log10(max(float(r @ r), 1e-30) / noise))
