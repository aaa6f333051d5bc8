"""The golden side of a validate run: a REF.npz read safely and fitted to the
model. Layout (DESIGN.md "Samples in .npz files"): ``inputs/NAME`` and
``outputs/NAME``, one array per model input and output; the first axis
indexes samples; a sample gets a batch axis of 1 when the model's input has
one more dimension than the sample. An outputs-only file (plain output names)
takes its inputs from a separate inputs file.

Every way a reference can fail to fit is a one-line BadInput (exit 2) raised
before the first inference: pickled or non-numeric arrays, unequal sample
counts, input names or shapes the model does not take, a model output the
reference lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.samples import check_names, feed_shape, sample_count

INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"


def load_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz; refuses pickles (``allow_pickle=False``) and
    anything that is not numbers (strings, objects, structured records)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise BadInput(
                f"{what} holds a pickled (object) array; refused: save numeric arrays only"
            ) from None
        raise BadInput(f"{what} is not a readable .npz: {' '.join(str(exc).split())[:200]}") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError...
        raise BadInput(f"{what} is not a readable .npz: {' '.join(str(exc).split())[:200]}") from None
    if not arrays:
        raise BadInput(f"{what} holds no arrays")
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise BadInput(f"{what}: array {k!r} is not numeric ({a.dtype})")
    return arrays


@dataclass
class Reference:
    inputs: dict[str, np.ndarray]  # name -> (samples, ...)
    outputs: dict[str, np.ndarray]
    samples: int

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], inputs: dict[str, np.ndarray] | None = None
    ) -> Reference:
        ins = {k[len(INPUT_PREFIX) :]: v for k, v in arrays.items() if k.startswith(INPUT_PREFIX)}
        outs = {k[len(OUTPUT_PREFIX) :]: v for k, v in arrays.items() if k.startswith(OUTPUT_PREFIX)}
        if not ins and not outs:  # an outputs-only reference: every key is an output name
            outs = dict(arrays)
        if inputs:
            clash = sorted(set(ins) & set(inputs))
            if clash:
                raise BadInput(f"input {clash[0]!r} is in both the reference and the inputs file")
            ins.update(inputs)
        if not ins:
            raise BadInput("the reference holds no inputs (inputs/NAME); give the inputs file beside it")
        if not outs:
            raise BadInput("the reference holds no expected outputs (outputs/NAME)")
        return cls(ins, outs, sample_count({**ins, **outs}, "the reference"))

    def fit(self, declared: dict[str, Sequence[Any]], output_names: Sequence[str]) -> dict[str, list[int]]:
        """Check names and shapes against the model's inputs (``declared``: name
        -> declared shape, None/str for a free dimension) and outputs; returns
        the concrete shape of each input per inference (with its batch axis)."""
        check_names(self.inputs, list(declared), "the reference")
        check_names(self.outputs, list(output_names), "the reference", kind="output")
        shapes = {}
        for name, dims in declared.items():
            shapes[name] = feed_shape(name, tuple(self.inputs[name].shape[1:]), list(dims), "the reference")
        return shapes

    def feeds(self, i: int, shapes: dict[str, list[int]]) -> dict[str, np.ndarray]:
        """Sample ``i`` as one inference's arrays."""
        return {k: np.ascontiguousarray(self.inputs[k][i].reshape(shapes[k])) for k in self.inputs}
