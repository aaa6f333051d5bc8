"""`edgebench coverage` on models edgebench did not quantize (ORT's own
quantize_static, an int8 .tflite without a profile), effective bits for a
too-wide calibration, and the figures checked against values computed here
from the model's own quantization parameters (truth known)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from controller.cli import main
from controller.models import onnx_cnn, tflite_builder
from controller.quantize import coverage as cov


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cov")
    rng = np.random.default_rng(0)
    out = {"model": onnx_cnn.tiny_cnn(d / "cnn.onnx")}
    for name, n, sd in (("cal", 8, 1.0), ("field", 4, 1.0), ("bright", 4, 4.0), ("faint", 4, 0.02)):
        out[name] = d / f"{name}.npz"
        np.savez(out[name], image=(rng.standard_normal((n, 3, 96, 96)) * sd).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def ort_quantized(cnn, tmp_path_factory) -> Path:
    """The CNN quantized by ONNX Runtime's quantize_static directly: no edgebench profile."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from agent.validate.reference import load_npz
    from controller.quantize.calibration import NpzReader

    out = tmp_path_factory.mktemp("ortq") / "cnn-ort-int8.onnx"
    cal = load_npz(cnn["cal"], "cal")
    reader = NpzReader(cal, {"image": [1, 3, 96, 96]})
    quantize_static(str(cnn["model"]), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True)
    assert not any(p.key == "edgebench.calibration" for p in onnx.load(str(out)).metadata_props)
    return out


def _coverage(capsys, tmp_path, *args: str) -> tuple[int, dict, str]:
    out = tmp_path / "cov.json"
    rc = main(["coverage", *args, "--json", str(out)])
    said = capsys.readouterr()
    return rc, (json.loads(out.read_text()) if out.is_file() else {}), said.out + said.err


def _input_range(model: Path, name: str) -> tuple[float, float, float]:
    """The input's range as its QuantizeLinear admits it, read here independently."""
    m = onnx.load(str(model))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    q = next(n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == name)
    s, zp = float(inits[q.input[1]]), inits[q.input[2]]
    info = np.iinfo(zp.dtype)
    return (info.min - int(zp)) * s, (info.max - int(zp)) * s, s


def test_coverage_of_a_model_quantized_by_ort_directly(cnn, ort_quantized, tmp_path, capsys):
    rc, rep, said = _coverage(capsys, tmp_path, str(ort_quantized), "--inputs", str(cnn["field"]))
    assert rc == 0, said
    (x,) = rep["inputs"]
    assert x["known"] is False and "statistics not known" in said
    assert any("input statistics are not known" in n for n in rep["notes"])
    assert rep["samples"] == 4 and rep["calibration"]["source"] is None
    assert said.startswith("coverage: no warning on 4 field samples") and "inside" not in said
    assert len(rep["activations"]) > 5  # ranges for every quantized activation, from the graph

    # four times brighter: the input clips, and the share is the one its own scale and zero point give
    rc, rep, said = _coverage(
        capsys, tmp_path, str(ort_quantized), "--inputs", str(cnn["bright"]), "--max-clip-share", "0.05"
    )
    assert rc == 3, said
    lo, hi, s = _input_range(ort_quantized, "image")
    x = np.load(cnn["bright"])["image"].astype(np.float64)
    truth = np.count_nonzero((x < lo - s / 2) | (x > hi + s / 2)) / x.size
    (row,) = [a for a in rep["activations"] if a["kind"] == "input"]
    assert row["tensor"] == "image" and row["clip_share"] == pytest.approx(truth, abs=1e-6) and truth > 0.05
    gate = rep["gates"][0]
    assert gate["passed"] is False and "image" in gate["failing"]
    assert rep["global_clip_share"] < truth  # the global figure is the second number, diluted
    assert "gate max_clip_share: FAIL" in said

    # --calibration gives the input statistics a profile would have
    rc, rep, said = _coverage(
        capsys, tmp_path, str(ort_quantized), "--inputs", str(cnn["bright"]), "--calibration", str(cnn["cal"])
    )
    (x,) = rep["inputs"]
    assert rc == 0 and x["known"] and "noisier" in x["how"] and rep["calibration"]["samples"] == 8
    assert "mean over channels" in said and "worst channel" in said


def _relu6_cnn(path: Path) -> Path:
    """Conv -> Clip(0, 6) -> Conv: ORT folds the Clip into the first Conv's range."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.8).astype(np.float32), n)
             for n, s in (("w1", (8, 3, 3, 3)), ("w2", (4, 8, 1, 1)))]  # fmt: skip
    inits += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", 0.0), ("hi", 6.0))]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])
    g = helper.make_graph(nodes, "relu6", [x], [y], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_a_folded_relu6_is_judged_against_the_calibration_sets_own_clipping(tmp_path, capsys):
    from onnxruntime.quantization import QuantFormat, quantize_static

    from controller.quantize.calibration import NpzReader

    model = _relu6_cnn(tmp_path / "relu6.onnx")
    x = (np.random.default_rng(6).standard_normal((8, 3, 16, 16)) * 3).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=x)
    q = tmp_path / "relu6-int8.onnx"
    reader = NpzReader({"x": x}, {"x": [1, 3, 16, 16]})
    quantize_static(str(model), str(q), reader, quant_format=QuantFormat.QDQ)
    assert "Clip" not in {n.op_type for n in onnx.load(str(q)).graph.node}  # folded into the Conv's range
    field = ["--inputs", str(tmp_path / "cal.npz"), "--max-clip-share", "0.05"]
    # the calibration set itself as the field: the Clip's own clamp reads as clipping without a baseline
    rc, rep, said = _coverage(capsys, tmp_path, str(q), *field)
    assert rc == 3 and any("folded into a range (ReLU6)" in n for n in rep["notes"])
    rc, rep, said = _coverage(capsys, tmp_path, str(q), *field, "--calibration", str(tmp_path / "cal.npz"))
    assert rc == 0, said
    clamped = [a for a in rep["activations"] if a["baseline_share"]]
    assert clamped and all(a["baseline_share"] == a["clip_share"] and a["excess_share"] == 0 for a in clamped)
    assert "on the calibration set" in said


def test_a_too_wide_calibration_is_flagged_by_effective_bits(cnn, tmp_path, capsys):
    q = tmp_path / "q.onnx"
    assert main(["quantize", str(cnn["model"]), "--calibration", str(cnn["cal"]), "--out", str(q)]) == 0
    capsys.readouterr()
    rc, rep, said = _coverage(
        capsys, tmp_path, str(q), "--inputs", str(cnn["field"]), "--min-effective-bits", "5"
    )
    assert rc == 0, said
    (row,) = [a for a in rep["activations"] if a["kind"] == "input"]
    assert row["effective_bits"] > 7  # field like the calibration: nearly all 8 bits in use

    # a field 50x fainter than the calibration: the range is far too wide for it
    rc, rep, said = _coverage(
        capsys, tmp_path, str(q), "--inputs", str(cnn["faint"]), "--min-effective-bits", "5"
    )
    assert rc == 3, said
    (row,) = [a for a in rep["activations"] if a["kind"] == "input"]
    lo, hi, s = _input_range(q, "image")
    x = np.load(cnn["faint"])["image"].astype(np.float64)
    span = (np.quantile(x, 0.999) - np.quantile(x, 0.001)) / s  # levels the field spans
    assert row["effective_bits"] == pytest.approx(np.log2(span + 1), abs=0.35) and row["effective_bits"] < 3
    gate = next(g for g in rep["gates"] if g["name"] == "min_effective_bits")
    assert gate["passed"] is False and "image" in gate["failing"]
    assert any("too wide for the field" in w for w in rep["warnings"])


def test_coverage_of_an_int8_tflite_from_its_tensor_parameters(tmp_path, capsys):
    model = tflite_builder.float_cnn(tmp_path / "f.tflite", size=32)
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "cal.npz", image=rng.standard_normal((8, 32, 32, 3)).astype(np.float32))
    np.savez(tmp_path / "bright.npz", image=(rng.standard_normal((4, 32, 32, 3)) * 3).astype(np.float32))
    q = tmp_path / "q.tflite"
    assert main(["quantize", str(model), "--calibration", str(tmp_path / "cal.npz"), "--out", str(q)]) == 0
    Path(str(q) + ".calibration.json").unlink()  # as another quantizer leaves it: no profile
    capsys.readouterr()
    rc, rep, said = _coverage(
        capsys, tmp_path, str(q), "--inputs", str(tmp_path / "bright.npz"), "--max-clip-share", "0.05"
    )
    assert rc == 3, said
    from ai_edge_litert.interpreter import Interpreter

    d = Interpreter(model_path=str(q)).get_input_details()[0]
    s, zp = d["quantization"]
    x = np.load(tmp_path / "bright.npz")["image"].astype(np.float64)
    qx = np.rint(x / s) + zp
    truth = np.count_nonzero((qx < -128) | (qx > 127)) / x.size
    rows = {a["tensor"]: a for a in rep["activations"]}
    assert rows["image"]["kind"] == "input" and rows["image"]["clip_share"] == pytest.approx(truth, abs=1e-6)
    assert rows["image"]["saturation"] is False and any(a["saturation"] for a in rows.values())
    assert "image" in rep["gates"][0]["failing"] and any("saturation" in n for n in rep["notes"])


def test_an_int8_field_for_an_int8_input_is_fed_as_it_is(tmp_path, capsys):
    model = tflite_builder.int8_conv(tmp_path / "i8.tflite")  # int8 input, no signature, no profile
    x = np.random.default_rng(0).integers(-128, 128, (3, 32, 32, 3)).astype(np.int8)
    np.savez(tmp_path / "field.npz", image=x)
    rc, rep, said = _coverage(capsys, tmp_path, str(model), "--inputs", str(tmp_path / "field.npz"))
    rows = {a["tensor"]: a for a in rep["activations"]}
    truth = np.count_nonzero((x == -128) | (x == 127)) / x.size  # already integers: saturation only
    assert rc == 0 and rows["image"]["saturation"]
    assert rows["image"]["clip_share"] == pytest.approx(truth, abs=1e-6)
    assert rows["image"]["effective_bits"] == 8.0  # uniform over all 256 levels


def test_validate_coverage_without_onnx_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnx" else real(n, *a))
    assert cov.for_validate(tmp_path / "m.onnx", {}) is None
    assert capsys.readouterr().out.strip() == (
        "edgebench: note: coverage needs the onnx package (pip install 'edgebench[controller]')"
    )


def test_bad_coverage_input_is_one_line_exit_2(cnn, ort_quantized, tmp_path, capsys):
    np.savez(tmp_path / "wrong.npz", img=np.zeros((2, 3, 96, 96), np.float32))
    for suffix in (".onnx", ".tflite", ".pt"):
        (tmp_path / f"junk{suffix}").write_text("not a model")
    cases = [
        ([str(cnn["model"]), "--inputs", str(cnn["field"])], "coverage needs a QDQ-quantized model"),
        ([str(cnn["model"]), "--inputs", str(tmp_path / "wrong.npz")], "lacks model input(s) image"),
        ([str(cnn["model"]), "--inputs", str(cnn["field"]), "--min-effective-bits", "9"], "in [0, 8]"),
        ([str(tmp_path / "junk.onnx"), "--inputs", str(cnn["field"])], "junk.onnx: not an ONNX protobuf"),
        (
            [str(tmp_path / "junk.tflite"), "--inputs", str(cnn["field"])],
            "junk.tflite: not a loadable .tflite",
        ),
        ([str(tmp_path / "junk.pt"), "--inputs", str(cnn["field"])], "unknown model format"),
        (
            [str(ort_quantized), "--inputs", str(cnn["field"]), "--calibration", str(tmp_path / "wrong.npz")],
            "the calibration set lacks model input(s) image",
        ),
    ]
    for args, words in cases:
        rc, _, said = _coverage(capsys, tmp_path, *args)
        lines = said.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and words in lines[0], (words, said)
