"""`edgebench localize` through ONNX Runtime's OpenVINO EP: the agent runs from
.venv-openvino (onnxruntime-openvino), so every device run (taps, float,
device, hybrids) is OpenVINO's arithmetic, compared with the float model run
on that agent and scored by the text detector's mask IoU gate. The model is
the real PP-OCRv4 detector (rapidocr-onnxruntime), quantized by ONNX
Runtime's quantize_static (QDQ, per-tensor, uint8 activations).

Found with it: OpenVINO's INT8 ConvTranspose (the detector's upsampling head)
departs from the QDQ simulated on the host: about -16 dB against float where
the host's simulation keeps about 14 dB, and the hybrid cut there loses the
whole mask (IoU 0), while every cut before it keeps IoU ~0.92."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import OV_AGENT
from test_localize import _quantize

from controller.data import text_images
from controller.db import ResultsDB
from controller.models import ppocr

pytestmark = [
    pytest.mark.openvino,
    pytest.mark.skipif(not OV_AGENT.exists(), reason=".venv-openvino (onnxruntime-openvino) is missing"),
    pytest.mark.skipif(ppocr.models_dir() is None, reason="the rapidocr-onnxruntime wheel is missing"),
]


def test_localize_through_the_openvino_ep_finds_its_convtranspose_and_stores_every_run(
    ov_agent, run_cli, tmp_path
):
    model = ppocr.model_path(ppocr.DETECTOR)
    x = text_images.to_detector_input(text_images.pages(1, seed=40))
    np.savez(tmp_path / "x.npz", x=x)
    int8 = _quantize(model, tmp_path / "int8.onnx", x, "x")
    r = run_cli("localize", str(int8), "--float", str(model), "--inputs", str(tmp_path / "x.npz"),
                "--provider", "openvino", "--min-mask-iou", "0.5", "--tap-mib", "256",
                agent=ov_agent.address)  # fmt: skip
    doc = r.result
    assert r.rc == 3 and doc is not None, r.out + r.err
    v = doc["verdict"]
    assert v["op"] == "ConvTranspose" and v["metric"] == "min_mask_iou" and v["value"] < 0.5, v
    assert v["partition"]["provider"] == "OpenVINOExecutionProvider"
    probes = {p["tensor"]: p for p in doc["probes"]}
    assert probes[None]["passed"] and probes["(device model)"]["value"] < 0.5
    assert probes[v["passing_cut_before"]]["value"] >= 0.5  # the cut just before holds the mask
    by = {t["tensor"]: t for t in doc["tensors"]}
    # the device departs from the host's simulated QDQ at the verdict, not before it
    t = by[v["tensor"]]
    assert (
        t["source"] == "device arithmetic" and t["host_sqnr_db"] > 5 and t["sqnr_db"] < t["host_sqnr_db"] - 10
    )
    assert by[v["passing_cut_before"]]["source"] == "quantization error"
    runs = doc["device_runs"]
    assert runs["made"] <= runs["planned"] and runs["tap_runs"] == 1
    db = ResultsDB(run_cli.db)
    try:
        stored = db.query(limit=100)
    finally:
        db.close()
    assert len(stored) == runs["made"]  # every device run stored
