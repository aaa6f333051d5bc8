"""`edgebench validate`: outputs on the device against a reference, through the
real CLI and an in-process agent. A bad quantization is caught by its tensor
gate; the detector cliff (high cosine, vanished mask) by mask IoU, on the real
PP-OCR detector and text pages rendered by the project; int8 LiteRT outputs
are dequantized; bad references are refused with one line and nothing stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from controller.cli import main
from controller.data import text_images
from controller.db import ResultsDB
from controller.models import onnx_cnn, ppocr


@pytest.fixture
def cli(shared_agent, run_cli):
    """``cli(*args) -> (exit code, stdout, stderr, result or None)`` against the module's in-process agent."""

    def run(*args: str) -> tuple[int, str, str, dict | None]:
        r = run_cli(*args, agent=shared_agent.address)
        return r.rc, r.out, r.err, r.result

    run.db = run_cli.db
    return run


def _reference(model: Path, inputs: dict, out: Path) -> Path:
    np.savez(out.with_suffix(".x.npz"), **inputs)
    assert main(["reference", str(model), "--inputs", str(out.with_suffix(".x.npz")), "--out", str(out)]) == 0
    return out


def _coarse_weights(src: Path, dst: Path, bits: int = 3) -> Path:
    """Every conv weight rounded per tensor to a few levels: what a bad INT8
    calibration does to a layer whose range was mis-set."""
    m = onnx.load(str(src))
    for t in m.graph.initializer:
        w = numpy_helper.to_array(t)
        if w.ndim == 4:
            step = np.abs(w).max() / (2 ** (bits - 1) - 1)
            t.CopyFrom(numpy_helper.from_array((np.round(w / step) * step).astype(w.dtype), t.name))
    onnx.save(m, str(dst))
    return dst


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("cnn")
    model = onnx_cnn.tiny_cnn(d / "cnn.onnx")
    name = onnx.load(str(model)).graph.input[0].name
    x = np.random.default_rng(3).standard_normal((8, 3, 96, 96)).astype(np.float32)
    ref = _reference(model, {name: x}, d / "ref.npz")
    return model, _coarse_weights(model, d / "cnn-coarse.onnx"), ref


def test_a_bad_quantization_fails_the_cosine_gate_the_original_passes(cli, cnn):
    model, coarse, ref = cnn
    rc, out, _, res = cli("validate", str(model), "--reference", str(ref), "--min-cosine", "0.999")
    assert rc == 0, out
    v = res["validation"]
    (o,) = v["outputs"]
    assert res["kind"] == "validate" and v["samples"] == 8 == res["iterations"] and v["passed"] is True
    assert o["cosine"] > 0.99999 and o["top1_agreement"] == 1.0
    # the placement record comes with a validate run, as with a bench
    assert res["placement"]["total_nodes"] > 0 and res["placement"]["fallback"] is False
    assert res["inputs"] == [{"name": "image", "shape": [1, 3, 96, 96], "dtype": "float32"}]

    rc, out, _, bad = cli("validate", str(coarse), "--reference", str(ref), "--min-cosine", "0.999")
    assert rc == 3, out
    v = bad["validation"]
    (o,) = v["outputs"]
    assert v["passed"] is False and o["cosine"] < 0.999
    (gate,) = [g for g in bad["gates"] if g["name"] == "min_cosine"]
    # the gate names the output, the metric, the value and the worst sample; the numbers agree
    worst = min((w for w in v["worst"] if w["metric"] == "cosine"), key=lambda w: w["value"])
    assert gate["passed"] is False and gate["value"] == o["cosine"] == pytest.approx(worst["value"])
    assert gate["worst_sample"] == worst["sample"] and 0 <= worst["sample"] < 8
    assert (
        f"{o['name']}: cosine {o['cosine']:.4g} misses >= 0.999 (worst sample {worst['sample']}"
        in gate["message"]
    )
    assert "gate min_cosine: FAIL" in out


def test_the_summary_figures_are_the_per_sample_figures_and_fetch_brings_the_outputs(
    cli, cnn, shared_agent, tmp_path
):
    model, coarse, ref = cnn
    rc, out, _, res = cli("validate", str(coarse), "--reference", str(ref), "--keep-outputs")
    assert rc == 0  # no gate given: figures only
    (o,) = res["validation"]["outputs"]
    assert res["validation"]["outputs_kept"] is True
    home = tmp_path / "fetched"
    fetch = ["fetch", res["run_id"], "--agent", shared_agent.address, "--out", str(home), "--db", cli.db]
    assert main(fetch) == 0
    with np.load(home / "outputs.npz") as z, np.load(ref) as r:
        got, expected = z[o["name"]], r["outputs/" + o["name"]]
    assert got.shape == expected.shape == (8, 10)
    # recomputed on the host from the device's own outputs
    cos = [
        float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
        for a, b in zip(got, expected, strict=True)
    ]
    assert o["cosine"] == pytest.approx(min(cos), abs=1e-6)
    assert o["cosine_mean"] == pytest.approx(np.mean(cos), abs=1e-6)
    top1 = np.mean(np.argmax(got, axis=1) == np.argmax(expected, axis=1))
    assert o["top1_agreement"] == pytest.approx(top1)
    assert "validation: 8 sample(s) on the device, no gates" in out


# -- the detector cliff, on the real PP-OCR detector -------------------------
needs_ppocr = pytest.mark.skipif(
    ppocr.models_dir() is None, reason="the rapidocr-onnxruntime wheel is missing"
)


def misdequantized_head(src: Path, dst: Path, scale: float = 0.4, offset: float = 0.06) -> Path:
    """The detector with its probability map read back at the wrong scale and
    zero point, as a head whose output requantization was calibrated wrong:
    every text pixel falls under 0.5 while the map keeps its shape."""
    m = onnx.load(str(src))
    g = m.graph
    out = g.output[0].name
    (sig,) = [n for n in g.node if n.output[0] == out]
    sig.output[0] = "prob_float"
    g.initializer.extend(
        [numpy_helper.from_array(np.array(scale, np.float32), "bad_scale"),
         numpy_helper.from_array(np.array(offset, np.float32), "bad_offset")]
    )  # fmt: skip
    g.node.extend(
        [onnx.helper.make_node("Mul", ["prob_float", "bad_scale"], ["prob_scaled"], name="bad_dequant_scale"),
         onnx.helper.make_node("Add", ["prob_scaled", "bad_offset"], [out], name="bad_dequant_offset")]
    )  # fmt: skip
    onnx.save(m, str(dst))
    return dst


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("det")
    model = ppocr.model_path(ppocr.DETECTOR)
    x = text_images.to_detector_input(text_images.pages(4, seed=10))
    ref = _reference(model, {"x": x}, d / "ref.npz")
    return model, misdequantized_head(model, d / "det-bad-head.onnx"), ref


@needs_ppocr
def test_the_mask_cliff_passes_cosine_and_fails_mask_iou(cli, detector):
    model, bad, ref = detector
    gates = ["--min-cosine", "0.85", "--min-mask-iou", "0.5"]
    rc, out, _, good = cli("validate", str(model), "--reference", str(ref), *gates)
    assert rc == 0, out
    (o,) = good["validation"]["outputs"]
    assert o["name"] == "sigmoid_0.tmp_0" and o["mask_iou"] == 1.0 and o["cosine"] > 0.999
    assert good["inputs"][0]["shape"] == [1, 3, 320, 320]  # a sample got its batch axis

    rc, out, _, res = cli("validate", str(bad), "--reference", str(ref), *gates)
    assert rc == 3, out
    (o,) = res["validation"]["outputs"]
    by_gate = {g["name"]: g for g in res["gates"]}
    # the tensor metric is fooled, the task metric is not
    assert 0.85 <= o["cosine"] < 0.97 and by_gate["min_cosine"]["passed"] is True
    assert o["mask_iou"] == 0.0 and o["mask_iou_min"] == 0.0 and by_gate["min_mask_iou"]["passed"] is False
    assert "sigmoid_0.tmp_0: mask_iou 0 misses >= 0.5" in by_gate["min_mask_iou"]["message"]
    assert "gate min_mask_iou: FAIL" in out and "gate min_cosine: PASS" in out


@needs_ppocr
def test_a_threshold_lower_than_the_shifted_map_sees_the_mask_again(cli, detector):
    model, bad, ref = detector
    rc, _, _, res = cli("validate", str(bad), "--reference", str(ref), "--mask-threshold", "0.3")
    (o,) = res["validation"]["outputs"]
    assert rc == 0 and res["validation"]["mask_threshold"] == 0.3 and o["mask_iou"] > 0.8


# -- LiteRT int8 outputs are dequantized ----------------------------------------
def _conv_nhwc(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """SAME 3x3 convolution, NHWC input, (cout, 3, 3, cin) weights."""
    n, h, wd, _ = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, wd, w.shape[0]))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nhwc,oc->nhwo", p[:, dy : dy + h, dx : dx + wd, :], w[:, dy, dx, :])
    return out


def test_int8_litert_outputs_are_dequantized_before_comparison(cli, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from controller.models import tflite_builder

    model = tflite_builder.int8_conv(tmp_path / "q.tflite", size=16)
    it = Interpreter(model_path=str(model))
    (inp,), (outd,) = it.get_input_details(), it.get_output_details()
    tensors = {t["name"]: t for t in it.get_tensor_details()}
    w = it.get_tensor(tensors["conv/w"]["index"]).astype(np.float64)
    w_scale = tensors["conv/w"]["quantization_parameters"]["scales"]
    in_scale, in_zp = inp["quantization"]
    xq = np.random.default_rng(0).integers(-128, 128, (5, 16, 16, 3), dtype=np.int8)
    # the float truth: the same conv on real values, ReLU, no rounding
    real = np.maximum(
        _conv_nhwc((xq.astype(np.float64) - in_zp) * in_scale, w * w_scale[:, None, None, None]), 0
    )
    ref = tmp_path / "ref.npz"
    np.savez(ref, **{f"inputs/{inp['name']}": xq, f"outputs/{outd['name']}": real.astype(np.float32)})
    rc, out, _, res = cli("validate", str(model), "--reference", str(ref), "--min-sqnr-db", "20")
    assert rc == 0, out
    v = res["validation"]
    (o,) = v["outputs"]
    assert v["dequantized"] == [outd["name"]] and "dequantized: " + outd["name"] in out
    out_scale = outd["quantization"][0]
    in_range = real.max() < (127 - outd["quantization"][1]) * out_scale
    assert o["cosine"] > 0.999 and (o["max_abs_err"] <= out_scale * 0.51 + 1e-6 or not in_range)
    assert res["runtime"]["name"] == "litert"


# -- bad references: one line, exit 2, nothing stored --------------------------
def _stored(db_url: str) -> list:
    db = ResultsDB(db_url)
    try:
        return db.query(limit=100)
    finally:
        db.close()


def test_bad_references_exit_2_with_one_line_and_nothing_stored(cli, cnn, tmp_path):
    model, _, ref = cnn
    with np.load(ref) as z:
        good = {k: z[k] for k in z.files}
    x, y = good["inputs/image"], good["outputs/logits"]
    cases = {
        "pickled": ({"inputs/image": np.array([object()], dtype=object), "outputs/logits": y}, "pickled"),
        "text": ({"inputs/image": x, "outputs/logits": np.array(["a"] * 8)}, "not numeric"),
        "wrong input name": (
            {"inputs/img": x, "outputs/logits": y},
            "the reference: 'img' is not a model input; model inputs: image",
        ),
        "wrong shape": (
            {"inputs/image": x[:, :, :64], "outputs/logits": y},
            "the reference: input 'image' has samples of shape 3x64x96, which do not fit the model's "
            "1x3x96x96",
        ),
        "missing output": (
            {"inputs/image": x, "outputs/other": y},
            "'other' is not a model output; model outputs: logits",
        ),
        "counts": (
            {"inputs/image": x, "outputs/logits": y[:5]},
            "the reference: every array needs the same number of samples",
        ),
        "output shape": ({"inputs/image": x, "outputs/logits": y[:, :7]}, "the reference has samples of 7"),
    }
    for label, (arrays, words) in cases.items():
        path = tmp_path / f"{label}.npz"
        np.savez(path, **arrays)
        rc, out, err, res = cli("validate", str(model), "--reference", str(path))
        lines = err.strip().splitlines()
        assert rc == 2, (label, out, err)
        assert len(lines) == 1 and lines[0].startswith("edgebench: error: ") and words in lines[0], (
            label,
            err,
        )
        assert res is None and "Traceback" not in out + err
    assert _stored(cli.db) == []
    rc, _, err, _ = cli("validate", str(model), "--reference", str(tmp_path / "absent.npz"))
    assert rc == 2 and "reference file not found" in err
    rc, _, err, _ = cli("validate", str(model), "--reference", str(ref), "--min-cosine", "x")
    assert rc == 2 and "expected a number or OUTPUT=NUMBER" in err
    rc, _, err, _ = cli("validate", str(model), "--reference", str(ref), "--boxes", "logits=xyxy,scor")
    assert rc == 2 and "unknown column 'scor'" in err and _stored(cli.db) == []


def test_an_outputs_only_reference_takes_its_inputs_beside_it(cli, cnn, tmp_path):
    model, _, ref = cnn
    with np.load(ref) as z:
        np.savez(tmp_path / "x.npz", image=z["inputs/image"])
        np.savez(tmp_path / "y.npz", logits=z["outputs/logits"])  # today's outputs-only layout
    args = ("validate", str(model), "--reference", str(tmp_path / "y.npz"))
    rc, out, _, res = cli(*args, "--inputs", str(tmp_path / "x.npz"), "--min-top1-agreement", "1")
    assert rc == 0, out and res["validation"]["samples"] == 8
    rc, _, err, _ = cli(*args)
    assert rc == 2 and "holds no inputs" in err


def test_a_per_output_gate_names_its_output_and_a_missing_metric_fails(cli, cnn):
    model, coarse, ref = cnn
    rc, _, _, res = cli("validate", str(coarse), "--reference", str(ref), "--min-cosine", "logits=0.5",
                        "--max-nmse", "nope=1", "--min-mask-iou", "0.5")  # fmt: skip
    assert rc == 3
    g = {(x["name"], x["output"]): x for x in res["gates"]}
    assert g[("min_cosine", "logits")]["passed"] is True
    assert (
        g[("max_nmse", "nope")]["passed"] is False and "no such output" in g[("max_nmse", "nope")]["message"]
    )
    # logits are class scores, not a probability map: mask IoU does not apply, and the gate says so
    assert (
        g[("min_mask_iou", "*")]["passed"] is False
        and "no output has this metric" in g[("min_mask_iou", "*")]["message"]
    )


PLUGIN = """
import numpy as np

def margin(outputs, reference, inputs):
    got, want = outputs["logits"], reference["logits"]
    assert got.shape == want.shape and inputs["image"].shape[0] == got.shape[0]
    top = np.sort(got, axis=1)
    return {"mean_margin": float(np.mean(top[:, -1] - top[:, -2])), "samples": got.shape[0]}
"""


def test_a_metric_plugin_gets_the_device_outputs_and_its_numbers_gate(cli, cnn, tmp_path):
    model, _, ref = cnn
    (tmp_path / "myplugin.py").write_text(PLUGIN)
    plugin = f"{tmp_path / 'myplugin.py'}:margin"
    rc, out, _, res = cli("validate", str(model), "--reference", str(ref), "--metric-plugin", plugin,
                          "--plugin-gate", "samples>=8", "--plugin-gate", "mean_margin<=-1")  # fmt: skip
    assert rc == 3, out
    v = res["validation"]
    assert v["plugin"]["samples"] == 8.0 and v["plugin"]["mean_margin"] > 0 and v["passed"] is False
    checks = {g["metric"]: g["passed"] for g in v["gates"] if g["name"] == "plugin"}
    assert checks == {"samples": True, "mean_margin": False}
    assert "plugin mean_margin = " in out
    rc, _, err, _ = cli("validate", str(model), "--reference", str(ref), "--metric-plugin", "nosuchmodule:f")
    assert rc == 2 and "--metric-plugin nosuchmodule" in err


def test_a_reference_over_the_agent_quota_is_refused_in_one_line(agent_factory, cnn, tmp_path, capsys):
    model, _, ref = cnn
    small = agent_factory(
        artifact_quota=model.stat().st_size + 4096
    )  # the model fits, the reference does not
    db = f"sqlite:///{tmp_path / 'q.db'}"
    rc = main(
        ["validate", str(model), "--reference", str(ref), "--agent", small.address, "--quiet", "--db", db]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "quota" in err[0], err
    assert list((small.state_dir / "runs").iterdir()) == [] and _stored(db) == []
