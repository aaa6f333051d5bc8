"""`edgebench demo`: the main job end to end on an embedded agent: the bench of
a CNN built here (result under --out and in the DB), then quantize ->
optimize -> validate on PP-OCR's real text detector with rendered pages (the
before/after table, an HTML report), then coverage of dim field frames."""

from __future__ import annotations

import json

import pytest

from controller.cli import main
from controller.db import ResultsDB
from controller.models import ppocr


def test_demo_bench_writes_result_and_stores_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'd.db'}")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--warmup", "0.2", "--duration", "0.5", "--no-pipeline"]) == 0
    doc = json.loads((out / "result.json").read_text())
    assert doc["status"] == "completed" and doc["model"]["name"] == "demo_cnn.onnx"
    assert doc["iterations"] >= 10 and doc["throughput_ips"] > 0
    assert (out / f"{doc['run_id']}.json").is_file()
    text = capsys.readouterr().out
    assert "latency ms" in text and "board" in text and doc["run_id"] in text
    db = ResultsDB()
    assert db.get(doc["run_id"])["run_id"] == doc["run_id"]
    db.close()


@pytest.mark.skipif(ppocr.models_dir() is None, reason="the rapidocr-onnxruntime wheel is missing")
def test_demo_runs_the_pipeline_on_the_real_detector(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'd.db'}")
    out = tmp_path / "demo"
    # --no-yolo: the YOLOv8n headline (demo_yolo.py) adds ~5 min on 2 cores, too long for the suite
    assert main(["demo", "--out", str(out), "--warmup", "0.2", "--duration", "0.5", "--no-yolo"]) == 0
    said = capsys.readouterr().out
    rep = json.loads((out / "optimize" / "optimize.json").read_text())
    assert rep["compare"]["size_bytes"]["ratio"] > 3 and rep["failed"] == []
    iou = {a["metric"]: a for a in rep["accuracy"]}["mask_iou"]
    assert iou["original"] == 1.0 and iou["optimized"] >= 0.8
    # the before/after table, the report's path and the coverage warning reach the terminal
    assert "speedup (median A/B, 95% CI)" in said and f"report: {out / 'optimize' / 'report.html'}" in said
    assert (out / "optimize" / "report.html").read_text().count("<tr>") >= 6
    assert "coverage WARNING (" in said and "input x differs from the calibration set: darker" in said
    db = ResultsDB()
    kinds = sorted(r["kind"] for r in db.query(limit=10))
    db.close()
    assert kinds == ["bench", "bench", "bench", "pipeline", "validate", "validate"]
    # the OCR application, stage by stage, reading the rendered text back
    assert "det alone" in said and "OCR: 4 of 4 rendered lines read back exactly" in said
