"""``quantize --explain`` and the hazards section of every quantize report, on
real QDQ models written by ONNX Runtime's quantizer: a CNN whose first conv
has one output channel 1000x narrower than the rest (spread per-tensor
weights), and bad --target / --explain input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from controller.cli import main
from controller.models import onnx_cnn


@pytest.fixture(scope="module")
def spread(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("spread")
    m = onnx.load(str(onnx_cnn.tiny_cnn(d / "cnn.onnx")))
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    w = next(t for t in m.graph.initializer if t.name == conv.input[1])
    a = numpy_helper.to_array(w).copy()
    a[0] *= 1e-3  # one output channel 1000x narrower: per-tensor, it keeps a fraction of a level
    w.CopyFrom(numpy_helper.from_array(a, w.name))
    onnx.save(m, str(d / "spread.onnx"))
    rng = np.random.default_rng(0)
    for name, n in (("cal", 8), ("val", 4)):
        np.savez(d / f"{name}.npz", image=rng.standard_normal((n, 3, 96, 96)).astype(np.float32))
    return {"model": d / "spread.onnx", "cal": d / "cal.npz", "val": d / "val.npz", "conv": conv.name}


def _quantize(spread, out: Path, *extra: str) -> dict:
    js = out.with_suffix(".json")
    args = ["quantize", str(spread["model"]), "--calibration", str(spread["cal"]), "--out", str(out)]
    assert main([*args, *extra, "--json", str(js)]) == 0
    return json.loads(js.read_text())


def test_explain_names_a_per_tensor_conv_with_spread_channels_and_per_channel_clears_it(
    spread, tmp_path, capsys
):
    rep = _quantize(spread, tmp_path / "pt.onnx", "--per-tensor")
    kinds = {(h["kind"], h["node"]) for h in rep["hazards"]["hazards"]}
    assert ("spread_weights", spread["conv"]) in kinds  # the quantize report carries the section
    capsys.readouterr()
    js = tmp_path / "explain.json"
    rc = main(["quantize", "--explain", str(tmp_path / "pt.onnx"), "--calibration", str(spread["cal"]),
               "--json", str(js)])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    section = json.loads(js.read_text())["hazards"]
    h = next(h for h in section["hazards"] if h["kind"] == "spread_weights" and h["node"] == spread["conv"])
    # the numbers behind it: the narrow channel rounds to zeros, the widest keeps >= 50 levels
    assert h["numbers"]["ratio"] >= 100 and h["numbers"]["zero_channels"] == 1 and h["levels"] == 0
    assert h["keep_float"] == [spread["conv"]]
    assert section["samples"] == 1 and spread["conv"] in text and "spread_weights" in text
    levels = [x["levels"] for x in section["hazards"]]
    assert levels == sorted(levels)  # worst first
    # per-channel weights give the narrow channel its own scale: the hazard is gone
    pc = _quantize(spread, tmp_path / "pc.onnx")  # per-channel is the default
    assert not [x for x in pc["hazards"]["hazards"] if x["kind"] == "spread_weights"]


def test_bad_target_metric_and_bad_explain_input_are_one_line_exit_2(spread, tmp_path, capsys):
    base = ["quantize", str(spread["model"]), "--calibration", str(spread["cal"]),
            "--out", str(tmp_path / "q.onnx"), "--validation", str(spread["val"])]  # fmt: skip
    cases = [
        ([*base, "--target", "map75>=0.5"], "bad --target"),
        ([*base, "--target", "recall>=0.5"], "bad --target"),
        ([*base, "--target", "map50>=0.5"], "needs --boxes"),
        ([*base, "--target", "map50>=0.5", "--boxes", "logits=yolov9"], "unknown decoder"),
        (
            [*base, "--target", "accuracy>=0.5", "--labels", str(tmp_path / "none.json")],
            "labels file not found",
        ),
        (["quantize", "--explain", str(spread["model"])], "not a QDQ model"),
        (["quantize", str(spread["model"])], "needs --calibration"),
    ]
    for args, words in cases:
        assert main(args) == 2, words
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (words, err)
    assert not (tmp_path / "q.onnx").exists()
