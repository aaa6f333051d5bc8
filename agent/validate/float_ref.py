"""The reference made on the board (ValidateSpec.float_model_sha256): the
float model run on the CPU, one sample at a time, beside the device model.
localize taps intermediate tensors this way: only their metrics cross the
network, and memory holds one sample's tapped tensors (the float model's and
the device's), never all samples'."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.samples import sample_count
from agent.validate.reference import Reference


class _Column:
    """``ref.outputs[name][i]``: output ``name`` of sample ``i``, computed on demand."""

    def __init__(self, owner: FloatReference, name: str) -> None:
        self.owner, self.name = owner, name

    def __getitem__(self, i: int) -> np.ndarray:
        return self.owner.sample(i)[self.name]


class FloatReference(Reference):
    def __init__(self, model: Path, inputs: dict[str, np.ndarray]) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BadInput("a reference made on the board needs onnxruntime on the agent") from None
        try:
            self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise BadInput(
                f"the float model does not load on the board's CPU: {' '.join(str(exc).split())[:200]}"
            ) from None
        names = [o.name for o in self.session.get_outputs()]
        super().__init__(
            inputs, {n: _Column(self, n) for n in names}, sample_count(inputs, "the inputs file")
        )  # type: ignore[misc]
        self._shapes: dict[str, list[int]] = {}
        self._at: int | None = None
        self._outs: dict[str, np.ndarray] = {}

    def fit(self, declared: dict[str, Sequence[Any]], output_names: Sequence[str]) -> dict[str, list[int]]:
        self._shapes = super().fit(declared, output_names)
        return self._shapes

    def sample(self, i: int) -> dict[str, np.ndarray]:
        if self._at != i:  # one sample's outputs held at a time
            self._outs = {}
            ys = self.session.run(None, self.feeds(i, self._shapes))
            self._outs = {o.name: np.asarray(y) for o, y in zip(self.session.get_outputs(), ys, strict=True)}
            self._at = i
        return self._outs
