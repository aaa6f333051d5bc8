"""Input data for a run: random tensors of the right dtype and shape, or an
.npz artifact. Quantized integer inputs are drawn from the real-valued range
their (scale, zero_point) can represent and quantized with those parameters,
so the model sees values a real calibrated input could produce."""

from __future__ import annotations

import numpy as np

from agent.runtimes.base import InputSpec


def quantized_range(dtype: np.dtype, scale: float, zero_point: int) -> tuple[float, float]:
    """The real values an integer tensor with these params can hold."""
    info = np.iinfo(dtype)
    return (info.min - zero_point) * scale, (info.max - zero_point) * scale


def quantize(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def random_input(spec: InputSpec, rng: np.random.Generator) -> np.ndarray:
    dt = np.dtype(spec.dtype)
    shape = tuple(spec.shape)
    if spec.quantization is not None and dt.kind in "iu" and spec.quantization[0] > 0:
        scale, zp = spec.quantization
        lo, hi = quantized_range(dt, scale, zp)
        return quantize(rng.uniform(lo, hi, size=shape), dt, scale, zp)
    if dt.kind == "f":
        return rng.random(size=shape, dtype=np.float32).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        # unquantized integers are usually ids or indices: keep them small and valid
        return rng.integers(0, min(10, np.iinfo(dt).max), size=shape, endpoint=False).astype(dt)
    raise ValueError(f"cannot generate data for input {spec.name!r} of dtype {dt}")


def random_inputs(specs: list[InputSpec], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s.name: random_input(s, rng) for s in specs}


def stack_batch(
    specs: list[InputSpec], arrays: dict[str, np.ndarray], batch: int | None
) -> dict[str, np.ndarray]:
    """``--batch N`` with ``--inputs``: each input's samples stacked to N along
    the batch axis (a sample without a batch axis gains one; fewer samples than
    N repeat, in order). Without a batch the arrays pass unchanged."""
    if not batch:
        return arrays
    out = dict(arrays)
    for s in specs:
        a = arrays.get(s.name)
        if a is None:
            continue
        if a.ndim == len(s.shape) - 1:  # one sample, no batch axis
            a = a[None]
        if a.ndim == len(s.shape) and a.shape[0] >= 1 and a.shape[0] != batch:
            reps = -(-batch // a.shape[0])
            a = np.concatenate([a] * reps, axis=0)[:batch]
        out[s.name] = a
    return out
