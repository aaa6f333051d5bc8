"""agent/samples.py: the one check of samples against a model's inputs, and
its one message style (the file first, then what does not fit)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from agent.errors import BadInput
from agent.samples import check_feeds, check_names, check_samples, feed_shape, shape_text


@dataclass
class _In:
    name: str
    shape: list[int]
    dtype: object


def _msg(fn, *a, **k) -> str:
    with pytest.raises(BadInput) as ei:
        fn(*a, **k)
    return str(ei.value)


def test_names_a_typo_before_what_is_missing_and_lists_the_models_inputs():
    assert _msg(check_names, ["imgs"], ["image"], "the calibration set") == (
        "the calibration set: 'imgs' is not a model input; model inputs: image"
    )
    assert (
        _msg(check_names, ["a"], ["a", "b", "c"], "X.npz")
        == "X.npz lacks model input(s) b, c; model inputs: a, b, c"
    )
    assert _msg(check_names, [], ["y"], "the reference", kind="output") == (
        "the reference lacks model output(s) y; model outputs: y"
    )
    check_names(["a", "extra"], ["a"], "the field set", extra_ok=True)  # extras left alone


def test_samples_take_a_batch_axis_of_one_and_must_agree_in_count_and_shape():
    declared = {"x": [None, 3, 8, 8], "m": [1, 2]}
    n, shapes = check_samples({"x": np.zeros((5, 3, 8, 8)), "m": np.zeros((5, 2))}, declared, "V.npz")
    assert (n, shapes) == (5, {"x": [1, 3, 8, 8], "m": [1, 2]})
    assert feed_shape("x", (3, 8, 8), ["N", 3, 8, 8]) == [1, 3, 8, 8]
    assert feed_shape("x", (2, 3, 8, 8), [None, 3, 8, 8]) == [2, 3, 8, 8]  # ranks agree: as is
    got = _msg(check_samples, {"x": np.zeros((5, 3, 8, 8)), "m": np.zeros((4, 2))}, declared, "V.npz")
    assert got == "V.npz: every array needs the same number of samples on its first axis; got m: 4, x: 5"
    got = _msg(check_samples, {"x": np.zeros((5, 3, 4, 8)), "m": np.zeros((5, 2))}, declared, "V.npz")
    assert got == "V.npz: input 'x' has samples of shape 3x4x8, which do not fit the model's ?x3x8x8"
    got = _msg(feed_shape, "x", (8,), ["N", 3, 8, 8], "the reference")
    assert got == "the reference: input 'x' has samples of shape 8, which do not fit the model's Nx3x8x8"


def test_one_inference_feeds_need_exact_shapes_and_a_safe_dtype():
    inputs = [_In("x", [1, 4], np.float32)]
    feeds = check_feeds(inputs, {"x": np.ones((1, 4), np.float16)}, "the inputs file")
    assert feeds["x"].dtype == np.float32 and feeds["x"].flags.c_contiguous
    assert _msg(check_feeds, inputs, {"x": np.ones((1, 3), np.float32)}, "the inputs file") == (
        "the inputs file: input 'x' has shape 1x3; the model expects 1x4"
    )
    assert _msg(check_feeds, inputs, {"x": np.ones((1, 4), np.complex64)}, "the inputs file") == (
        "the inputs file: input 'x' has dtype complex64; the model expects float32"
    )
    assert shape_text([]) == "scalar" and shape_text([None, -1, "batch", np.int64(3)]) == "?x?xbatchx3"
