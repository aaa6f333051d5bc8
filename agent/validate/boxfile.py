"""``boxes.npz``: the device's detections of a validate run, per box output, as
the controller fetches them for mAP (only boxes cross the wire).

Per output NAME: ``NAME/rows`` float32 [M, 6] (x1, y1, x2, y2, score, class
of every sample, in sample order) and ``NAME/counts`` int64 [S] (how many rows
each sample has); ``input_hw`` int64 [2], the model input's height and width
the boxes are in (absent when unknown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.errors import BadInput
from agent.validate.decode import Detections


def save(path: Path, detections: dict[str, list[Detections]], input_hw: tuple[int, int] | None) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, dets in detections.items():
        rows = [d.rows() for d in dets]
        arrays[f"{name}/rows"] = np.concatenate(rows) if rows else np.zeros((0, 6), np.float32)
        arrays[f"{name}/counts"] = np.asarray([len(d) for d in dets], dtype=np.int64)
    if input_hw is not None:
        arrays["input_hw"] = np.asarray(input_hw, dtype=np.int64)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)


def load(path: Path) -> tuple[dict[str, list[Detections]], tuple[int, int] | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path.name}: not a readable boxes file ({type(exc).__name__})") from None
    out: dict[str, list[Detections]] = {}
    for key in arrays:
        if not key.endswith("/counts"):
            continue
        name = key[: -len("/counts")]
        rows, counts = arrays[f"{name}/rows"], arrays[key]
        edges = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        out[name] = [Detections.from_rows(rows[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    hw = arrays.get("input_hw")
    return out, (None if hw is None else (int(hw[0]), int(hw[1])))
