"""The pipeline runner's own cost (issue 24), on the real PP-OCR pipeline
(detector -> DB post -> crop -> recogniser -> CTC) through the real runner
(``agent.pipeline.runner.Stream`` under ``agent.load.paced.measure_paced``).

Figures (bench/results/pipeline.json):

- overhead_ms{mean, p99}: each frame's time (the paced loop's clock reads
  around the frame) minus the sum of its stage times: the runner's own work
  per frame (item, clock reads, rows). overhead_share_30fps = mean over the
  33.3 ms frame of a 30 FPS camera. Target: <= 5 %.
- stage_error_pct: per stage, the runner's p50 against a bare loop's p50
  (the same stage objects called in a plain ``for`` loop, each timed with
  two clock reads), frames alternating between the two so the board's drift
  hits both alike. The ratio is runner / bare in the same run.

Run: .venv/bin/python bench/bench_pipeline.py [--frames 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from agent import rundir as files
from agent.load.loop import IterationLog, Loop
from agent.load.paced import measure_paced
from agent.pipeline.runner import Stream
from agent.pipeline.spec import check
from agent.pipeline.stages.base import Item
from agent.spec import LoadSpec, RunSpec
from agent.store.paths import artifact_path
from controller.client import sha256_file
from controller.data.text_images import render_with_text
from controller.models import ppocr

ROOT = Path(__file__).resolve().parents[1]
FRAME_30FPS_MS = 1000 / 30


def _stream(state: Path, run_dir: Path) -> Stream:
    shas = {}
    for key, name in (("det", ppocr.DETECTOR), ("rec", ppocr.RECOGNIZER)):
        src = ppocr.model_path(name)
        sha = sha256_file(src)
        dst = artifact_path(state, sha)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        shas[key] = (sha, name)
    stages = [
        {"stage": "resize", "size": [64, 320]},
        {"stage": "normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        {"stage": "model", "name": "det", "model_sha256": shas["det"][0], "model_name": shas["det"][1]},
        {"stage": "db_post"},
        {"stage": "crop", "size": [48, 320]},
        {"stage": "normalize", "name": "rec_norm", "mean": 0.5, "std": 0.5},
        {"stage": "model", "name": "rec", "model_sha256": shas["rec"][0], "model_name": shas["rec"][1]},
        {"stage": "ctc"},
    ]
    pipeline = check({"pipelines": [{"name": "ocr", "stages": stages}]})
    spec = RunSpec(kind="pipeline", model_sha256=shas["det"][0], pipeline=pipeline)
    return Stream(pipeline["pipelines"][0], 0, spec, run_dir)


def _bare(stream: Stream, frame: np.ndarray) -> list[int]:
    """The same stages in a plain loop, each timed alone."""
    item = Item(frame, frame)
    out = []
    for st in stream.stages:
        t = time.perf_counter_ns()
        item = st(item)
        out.append(time.perf_counter_ns() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        state = Path(d)
        run_dir = state / "runs" / "bench"
        run_dir.mkdir(parents=True)
        stream = _stream(state, run_dir)
        stream.frames = np.stack([render_with_text(i, 64, 320)[0] for i in range(4)])
        for _ in range(3):  # warm: kernels chosen, arenas grown
            stream.frame()
        bare: list[list[int]] = []
        runner_rows = []
        frames_rows = []
        for k in range(args.frames):
            # alternate: one paced runner frame, then the same frame through a bare loop
            stream.reset()
            stream.n = 0
            log = IterationLog(run_dir / files.ITERATIONS)
            flog = IterationLog(run_dir / files.ARRIVALS, cols=4)
            loop = Loop(stream.frame, log, lambda msg: None)
            measure_paced(loop, LoadSpec(rate_hz=30.0), flog, 0.0, 1)  # one frame, due at once
            log.close()
            flog.close()
            f = files.load_arrivals(run_dir)
            done = f[f[:, 1] >= 0][:1]
            runner_rows.append(stream.times[0].copy())
            frames_rows.append(done[0])
            bare.append(_bare(stream, stream.frames[k % len(stream.frames)]))
        stream.close()
    times = np.array(runner_rows)
    fr = np.array(frames_rows)
    service = fr[:, 2] - fr[:, 1]
    overhead_ms = (service - times.sum(axis=1)) / 1e6
    b = np.array(bare)
    names = [st["name"] for st in stream.snapshot()["stages"]]
    err = {
        n: round(100 * (float(np.median(times[:, j])) / float(np.median(b[:, j])) - 1), 2)
        for j, n in enumerate(names)
    }
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "frames": args.frames,
        "frame_ms_p50": round(float(np.median(service)) / 1e6, 3),
        "overhead_ms": {
            "mean": round(float(overhead_ms.mean()), 4),
            "p99": round(float(np.percentile(overhead_ms, 99)), 4),
        },
        "overhead_share_30fps": round(float(overhead_ms.mean()) / FRAME_30FPS_MS, 5),
        "overhead_target_met": float(overhead_ms.mean()) / FRAME_30FPS_MS <= 0.05,
        "stage_p50_ms": {n: round(float(np.median(times[:, j])) / 1e6, 3) for j, n in enumerate(names)},
        "bare_p50_ms": {n: round(float(np.median(b[:, j])) / 1e6, 3) for j, n in enumerate(names)},
        "stage_error_pct": err,
        # the same in absolute terms: a few us on a 20 us stage is a large share
        "stage_error_us": {
            n: round((float(np.median(times[:, j])) - float(np.median(b[:, j]))) / 1e3, 1)
            for j, n in enumerate(names)
        },
    }
    res = ROOT / "bench" / "results" / "pipeline.json"
    res.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
