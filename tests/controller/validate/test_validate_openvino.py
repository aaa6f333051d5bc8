"""validate on the device, not the host: through ONNX Runtime's OpenVINO EP in
its own venv (.venv-openvino's `edgebench-agent serve`), against a reference
computed on the host's CPU EP. The real PP-OCR detector and the project's CNN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import OV_AGENT

from controller.cli import main
from controller.data import text_images
from controller.models import onnx_cnn, ppocr

pytestmark = [
    pytest.mark.openvino,
    pytest.mark.skipif(not OV_AGENT.exists(), reason=".venv-openvino (onnxruntime-openvino) is missing"),
]


def _validate(run_cli, ov_agent, model, ref, *opts: str) -> tuple[int, dict]:
    r = run_cli("validate", model, "--reference", ref, *opts, agent=ov_agent.address)
    assert r.result is not None, r.err
    return r.rc, r.result


def test_the_cnn_validates_through_the_openvino_ep(ov_agent, tmp_path, run_cli):
    model = onnx_cnn.tiny_cnn(tmp_path / "cnn.onnx")
    np.savez(
        tmp_path / "x.npz", image=np.random.default_rng(5).standard_normal((6, 3, 96, 96)).astype(np.float32)
    )
    assert (
        main(
            ["reference", str(model), "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / "ref.npz")]
        )
        == 0
    )
    rc, res = _validate(run_cli, ov_agent, model, tmp_path / "ref.npz", "--provider", "openvino",
                        "--min-cosine", "0.999", "--min-top1-agreement", "1")  # fmt: skip
    assert rc == 0, res.get("error")
    assert res["runtime"]["providers"][0] == "OpenVINOExecutionProvider"
    p = res["placement"]
    assert p["nodes_by_device"].get("OpenVINO", 0) > 0 and p["accelerated_nodes"] > 0
    (o,) = res["validation"]["outputs"]
    # OpenVINO's CPU plugin computes differently from ORT's MLAS: close, not identical
    assert 0.999 <= o["cosine"] < 1.0 or o["max_abs_err"] > 0
    assert res["validation"]["passed"] is True and res["validation"]["samples"] == 6


@pytest.mark.skipif(ppocr.models_dir() is None, reason="the rapidocr-onnxruntime wheel is missing")
def test_the_text_detector_keeps_its_mask_on_openvino(ov_agent, tmp_path, run_cli):
    model = ppocr.model_path(ppocr.DETECTOR)
    np.savez(tmp_path / "x.npz", x=text_images.to_detector_input(text_images.pages(3, seed=40)))
    assert (
        main(
            ["reference", str(model), "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / "ref.npz")]
        )
        == 0
    )
    rc, res = _validate(run_cli, ov_agent, model, tmp_path / "ref.npz", "--provider", "openvino",
                        "--min-mask-iou", "0.9", "--min-cosine", "0.99")  # fmt: skip
    assert rc == 0, res.get("error")
    (o,) = res["validation"]["outputs"]
    assert o["mask_iou_min"] >= 0.9 and res["placement"]["nodes_by_device"].get("OpenVINO", 0) > 0


def test_optimize_runs_through_the_openvino_ep(ov_agent, tmp_path, capsys):
    model = onnx_cnn.tiny_cnn(tmp_path / "cnn.onnx")
    rng = np.random.default_rng(8)
    for name, n in (("cal", 12), ("val", 6)):
        np.savez(tmp_path / f"{name}.npz", image=rng.standard_normal((n, 3, 96, 96)).astype(np.float32))
    out = tmp_path / "opt"
    rc = main(["optimize", str(model), "--calibration", str(tmp_path / "cal.npz"), "--validation",
               str(tmp_path / "val.npz"), "--agent", ov_agent.address, "--provider", "openvino", "--out-dir",
               str(out), "--duration", "1", "--warmup", "0.2", "--quiet", "--no-telemetry",
               "--db", f"sqlite:///{tmp_path / 'o.db'}", "--min-top1-agreement", "0.6"])  # fmt: skip
    said = capsys.readouterr().out
    assert rc == 0, said
    rep = json.loads((out / "optimize.json").read_text())
    # both variants ran on the OpenVINO EP: the report's placement rows say where
    assert "OpenVINO" in rep["placement"]["original"] and "OpenVINO" in rep["placement"]["optimized"]
    assert rep["compare"]["size_bytes"]["ratio"] > 3 and (out / "report.html").is_file()
