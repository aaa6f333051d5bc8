"""The Runner protocol: what the benchmark loop needs from a runtime.

One runtime per module (onnxruntime.py, litert.py); a later TensorRT runner
implements the same few methods and registers in ``RUNNERS``. Runtimes are
imported lazily so the agent's main process never loads them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agent.errors import BadInput
from agent.samples import shape_text
from agent.spec import RunSpec


@dataclass
class InputSpec:
    """One model input as the runtime sees it after shapes are resolved."""

    name: str
    shape: list[int]
    dtype: np.dtype
    # (scale, zero_point) for quantized integer inputs, else None
    quantization: tuple[float, int] | None = None
    declared_shape: list[Any] = field(default_factory=list)  # as in the model (may hold symbols)


@dataclass
class OutputSpec:
    """One model output: its name, dtype, and (scale, zero_point) when the
    runtime hands back quantized integers (a LiteRT int8 output)."""

    name: str
    dtype: np.dtype
    quantization: tuple[float, int] | None = None


@runtime_checkable
class Runner(Protocol):
    name: str

    def load(self, model_path: Path, spec: RunSpec) -> float:
        """Create the session/interpreter; return init time in ms. Bad model or
        options raise agent.errors.BadInput with a one-line message."""

    def input_specs(self) -> list[InputSpec]: ...

    def make_inputs(self, spec: RunSpec, npz: Path | None) -> Any:
        """Feeds for ``run``: from an .npz (names and shapes checked) or random."""

    def output_specs(self) -> list[OutputSpec]: ...

    def resize_inputs(self, shapes: dict[str, list[int]]) -> None:
        """Make the inputs take these shapes (a LiteRT resize; ONNX Runtime
        takes any shape its dynamic dimensions allow)."""

    def feeds(self, arrays: dict[str, np.ndarray]) -> Any:
        """Feeds for ``run`` from arrays of the current input shapes."""

    def run(self, feeds: Any) -> list[np.ndarray]:
        """The outputs, in ``output_specs()`` order."""

    def placement(self, feeds: Any, log_text: str = "") -> dict:
        """Where each node ran: ``placement{...}`` (DESIGN.md) plus a ``nodes`` table.
        May run a short separate pass; never called during the measured phase."""

    def info(self) -> dict:
        """``{name, version, providers|delegate}``"""

    def close(self) -> None: ...


RUNNERS = {
    "onnxruntime": "agent.runtimes.onnxruntime:OrtRunner",
    "litert": "agent.runtimes.litert:LiteRTRunner",
}


def make_runner(runtime: str) -> Runner:
    try:
        target = RUNNERS[runtime]
    except KeyError:
        raise BadInput(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNNERS)}") from None
    mod, _, cls = target.partition(":")
    return getattr(importlib.import_module(mod), cls)()


def npz_arrays(npz: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(npz, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError...
        raise BadInput(f"inputs file is not a readable .npz: {exc}".splitlines()[0]) from None


def is_dynamic(dim: Any) -> bool:
    """A symbolic (``"N"``), unknown (None) or -1 dimension (LiteRT's are numpy ints)."""
    return not (isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and dim > 0)


def resolve_shape(
    name: str,
    declared: list[Any],
    override: list[int] | None,
    dynamic_ok: bool = False,
    batch: int | None = None,
) -> list[int]:
    """Concrete dims: the ``--input-shape`` override (rank and fixed dims must
    agree), else a dynamic batch (the first dimension) becomes 1, as trtexec
    does. Any other dynamic dimension is BadInput naming the input: a guess
    (1x3x1x1) would silently measure another workload. ``dynamic_ok`` (validate:
    the reference's samples give the shapes later) makes every dynamic dim 1.
    ``batch`` (``--batch N``) sets a dynamic first dimension; a static one that
    is not N is refused."""
    if batch is not None and override is None and declared:
        if not is_dynamic(declared[0]) and int(declared[0]) != batch:
            raise BadInput(
                f"input {name!r} has a static batch of {declared[0]} ({shape_text(declared)}): "
                f"--batch {batch} needs a model whose first dimension is dynamic"
            )
        override = [batch, *(1 if is_dynamic(d) and dynamic_ok else d for d in declared[1:])]
        if any(is_dynamic(d) for d in override[1:]):
            raise BadInput(
                f"input {name!r} has dynamic dimensions beyond the batch ({shape_text(declared)}): "
                f"give its shape with --input-shape {name}={_example(declared)}"
            )
        override = [int(d) for d in override]
    if override is None:
        if not dynamic_ok and any(is_dynamic(d) for d in declared[1:]):
            raise BadInput(
                f"input {name!r} has dynamic dimensions beyond the batch ({shape_text(declared)}): "
                f"give its shape with --input-shape {name}={_example(declared)}"
            )
        return [1 if is_dynamic(d) else int(d) for d in declared]
    if declared and len(override) != len(declared):
        raise BadInput(
            f"wrong shape for input {name!r}: {shape_text(override)} has rank {len(override)}, "
            f"model expects rank {len(declared)} ({shape_text(declared)})"
        )
    for got, want in zip(override, declared, strict=False):
        if isinstance(want, int) and want > 0 and got != want:
            raise BadInput(
                f"wrong shape for input {name!r}: {shape_text(override)}, "
                f"model expects {shape_text(declared)}"
            )
    return list(override)


def check_shape_names(input_shapes: dict[str, list[int]], names: list[str]) -> None:
    unknown = sorted(set(input_shapes) - set(names))
    if unknown:
        raise BadInput(
            f"unknown input name {unknown[0]!r} in --input-shape; model inputs: {', '.join(names)}"
        )


def _example(declared: list[Any]) -> str:
    """``--input-shape`` text for a declared shape: batch 1, the symbols to fill in."""
    dims = []
    for i, d in enumerate(declared):
        if not is_dynamic(d):
            dims.append(str(d))
        elif i == 0:
            dims.append("1")
        else:
            dims.append(d if isinstance(d, str) and d else f"D{i}")
    return "x".join(dims)
