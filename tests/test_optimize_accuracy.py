"""`edgebench optimize --labels ...`: the seed's table with real accuracy. The
PP-OCR direction classifier (rapidocr-onnxruntime wheel) is quantized on the
host and both variants validated on an in-process agent against text lines the
project renders upright or rotated by 180 degrees (truth known)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from controller.cli import main
from controller.data import text_images
from controller.models import ppocr

needs_ppocr = pytest.mark.skipif(
    ppocr.models_dir() is None, reason="the rapidocr-onnxruntime wheel is missing"
)


@needs_ppocr
def test_optimize_reports_top1_before_after_and_the_loss(agent, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    model = ppocr.model_path(ppocr.CLASSIFIER)
    cal, _ = text_images.orientation_lines(8, seed=7)
    x, labels = text_images.orientation_lines(8)
    np.savez(tmp_path / "cal.npz", x=cal)
    np.savez(tmp_path / "val.npz", x=x)
    flipped = tmp_path / "flipped.json"  # every label wrong: the accuracy gate must fail
    flipped.write_text(json.dumps([1 - v for v in labels]))
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    base = [
        "optimize",
        str(model),
        "--calibration",
        str(tmp_path / "cal.npz"),
        "--validation",
        str(tmp_path / "val.npz"),
    ]
    base += ["--agent", agent.address, "--quiet", "--no-telemetry", "--db", f"sqlite:///{tmp_path / 'r.db'}"]
    base += ["--duration", "0.3", "--warmup", "0", "--out-dir", str(tmp_path / "opt")]
    assert main([*base, "--labels", str(tmp_path / "labels.json"), "--min-accuracy", "0.5"]) == 0
    said = capsys.readouterr().out
    rep = json.loads((tmp_path / "opt" / "optimize.json").read_text())
    (row,) = [a for a in rep["accuracy"] if a["metric"] == "top-1 accuracy vs labels"]
    assert row["original"] == 1.0 and 0.5 <= row["optimized"] <= 1.0
    assert row["loss"] == pytest.approx(row["original"] - row["optimized"])
    assert "top-1 accuracy vs labels" in said and "loss" in said
    assert main([*base, "--labels", str(flipped), "--min-accuracy", "0.9"]) == 3
    rep = json.loads((tmp_path / "opt" / "optimize.json").read_text())
    assert any("accuracy" in f and "misses >= 0.9" in f for f in rep["failed"])
