"""Samples against a model's inputs: the one check (names, sample axis,
shapes, dtypes) and its one message style, for every place that feeds arrays
from an .npz to a model: bench inputs, validate references, `edgebench
reference`, quantize calibration and validation sets, coverage field sets.

DESIGN.md "Samples in .npz files": one array per model input, keyed by its
name; the first axis indexes samples; a sample gets a batch axis of 1 when the
model's input has one more dimension than the sample. A bench inputs file is
one inference's feeds (no sample axis): ``check_feeds``.

Messages, each naming the file (``what``) first:
  ``{what} lacks model input(s) A, B; model inputs: A, B, C``
  ``{what}: 'x' is not a model input; model inputs: A, B``
  ``{what}: every array needs the same number of samples on its first axis; got a: 3, b: 4``
  ``{what}: input 'x' has samples of shape 3x64, which do not fit the model's 1x3x64x64``
  ``{what}: input 'x' has shape 2x5; the model expects Nx4``
  ``{what}: input 'x' has dtype complex64; the model expects float32``
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from agent.errors import BadInput


class _Input(Protocol):  # runtimes.base.InputSpec: what check_feeds reads of it
    name: str
    shape: list[int]
    dtype: Any


def shape_text(shape: Sequence[Any]) -> str:
    """``1x3x224x224``; a free dimension shows as its symbol (``N``) or ``?``."""
    dims = []
    for d in shape:
        if isinstance(d, str) and d:
            dims.append(d)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0:
            dims.append(str(int(d)))
        else:
            dims.append("?")
    return "x".join(dims) or "scalar"


def check_names(
    given: Iterable[str], names: Sequence[str], what: str, kind: str = "input", extra_ok: bool = False
) -> None:
    """Every model ``kind`` (input/output) is given and, unless ``extra_ok``,
    nothing else is; a name the model lacks is said first (a typo is then
    named, not just missed)."""
    given = list(given)
    listed = ", ".join(names)
    unknown = sorted(set(given) - set(names))
    if unknown and not extra_ok:
        raise BadInput(f"{what}: {unknown[0]!r} is not a model {kind}; model {kind}s: {listed}")
    missing = [n for n in names if n not in given]
    if missing:
        raise BadInput(f"{what} lacks model {kind}(s) {', '.join(missing)}; model {kind}s: {listed}")


def sample_count(arrays: Mapping[str, np.ndarray], what: str) -> int:
    """The number of samples: every array's first axis, the same for all, > 0."""
    counts = {k: (a.shape[0] if a.ndim else 0) for k, a in arrays.items()}
    n = set(counts.values())
    if len(n) != 1 or 0 in n:
        listed = ", ".join(f"{k}: {c}" for k, c in sorted(counts.items()))
        raise BadInput(
            f"{what}: every array needs the same number of samples on its first axis; got {listed}"
        )
    return n.pop()


def feed_shape(
    name: str, sample: tuple[int, ...], declared: Sequence[Any], what: str = "the samples"
) -> list[int]:
    """A sample's shape as the model takes it: as is when the ranks agree, with
    a batch axis of 1 when the model has one more dimension; fixed dimensions
    must agree (None, a symbol or -1 is free)."""
    declared = list(declared)
    if len(declared) == len(sample) + 1:
        shape = [1, *sample]
    elif len(declared) == len(sample):
        shape = list(sample)
    else:
        shape = None
    fits = shape is not None and all(
        not (isinstance(want, (int, np.integer)) and want > 0) or got == want
        for got, want in zip(shape, declared, strict=True)
    )
    if not fits:
        raise BadInput(
            f"{what}: input {name!r} has samples of shape {shape_text(sample)}, "
            f"which do not fit the model's {shape_text(declared)}"
        )
    return shape  # type: ignore[return-value]


def check_samples(
    arrays: Mapping[str, np.ndarray], declared: Mapping[str, Sequence[Any]], what: str, extra_ok: bool = False
) -> tuple[int, dict[str, list[int]]]:
    """Names, sample count and shapes of an .npz's samples against the model's
    inputs (name -> declared shape): (samples, each input's shape per inference).
    ``extra_ok``: arrays the model does not take are left alone."""
    check_names(arrays, list(declared), what, extra_ok=extra_ok)
    n = sample_count({k: arrays[k] for k in declared}, what)
    return n, {k: feed_shape(k, tuple(arrays[k].shape[1:]), d, what) for k, d in declared.items()}


def check_feeds(
    inputs: Sequence[_Input], arrays: Mapping[str, np.ndarray], what: str
) -> dict[str, np.ndarray]:
    """One inference's feeds (a bench inputs file: no sample axis): names, exact
    shapes, dtypes cast only when numpy says it is safe (same kind)."""
    check_names(arrays, [i.name for i in inputs], what)
    feeds = {}
    for spec in inputs:
        a = arrays[spec.name]
        if list(a.shape) != list(spec.shape):
            raise BadInput(
                f"{what}: input {spec.name!r} has shape {shape_text(a.shape)}; "
                f"the model expects {shape_text(spec.shape)}"
            )
        if a.dtype != spec.dtype:
            if not np.can_cast(a.dtype, spec.dtype, casting="same_kind"):
                raise BadInput(
                    f"{what}: input {spec.name!r} has dtype {a.dtype}; "
                    f"the model expects {np.dtype(spec.dtype)}"
                )
            a = a.astype(spec.dtype)
        feeds[spec.name] = np.ascontiguousarray(a)
    return feeds
