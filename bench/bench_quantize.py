"""Quantize time and optimize's own overhead.

- quantize: the PP-OCR detector (4.7 MB, from the rapidocr-onnxruntime wheel)
  with 8 rendered text pages at 320x320, ``edgebench quantize`` end to end
  (pre-processing, calibration, QDQ, profile, the load-and-run check), against
  ORT's bare ``quantize_static`` on the same prepared model and samples
  (the work edgebench adds beyond the quantizer). Target: well under a minute.
- optimize overhead: ``edgebench optimize`` wall time minus the time of the
  runs it performs (the four runs' own spans as the agent reports them, from
  start to end) and minus quantize: the reference, pushes, waits and report.

    .venv/bin/python bench/bench_quantize.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from controller.cli import main as cli
    from controller.data import text_images
    from controller.models import ppocr
    from controller.quantize.calibration import NpzReader, graph_inputs
    from controller.quantize.prepare import prepare

    ort.set_default_logger_severity(3)
    det = ppocr.model_path(ppocr.DETECTOR)
    out: dict = {"model": f"{det.name} ({det.stat().st_size} bytes)", "calibration_samples": 8}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cal = {"x": text_images.to_detector_input(text_images.pages(8, seed=100))}
        np.savez(d / "cal.npz", **cal)
        np.savez(d / "val.npz", x=text_images.to_detector_input(text_images.pages(4, seed=500)))
        t0 = time.perf_counter()
        assert (
            cli(["quantize", str(det), "--calibration", str(d / "cal.npz"), "--out", str(d / "q.onnx")]) == 0
        )
        out["quantize_s"] = round(time.perf_counter() - t0, 3)
        import onnx

        # the baseline quantizes as edgebench's default does: per-channel weights (presets.py)
        pre = prepare(det, True, lambda s: None)
        reader = NpzReader(cal, graph_inputs(onnx.load(str(pre))))
        t0 = time.perf_counter()
        q8 = {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8, "per_channel": True}
        quantize_static(str(pre), str(d / "bare.onnx"), reader, quant_format=QuantFormat.QDQ, **q8)
        out["bare_quantize_static_s"] = round(time.perf_counter() - t0, 3)
        out["quantize_ratio_to_bare"] = round(out["quantize_s"] / out["bare_quantize_static_s"], 3)

        t0 = time.perf_counter()
        sets = ["--calibration", str(d / "cal.npz"), "--validation", str(d / "val.npz")]
        opts = [
            "--out-dir",
            str(d / "opt"),
            "--duration",
            "3",
            "--warmup",
            "0.5",
            "--quiet",
            "--no-telemetry",
        ]
        rc = cli(["optimize", str(det), *sets, *opts, "--db", f"sqlite:///{d / 'o.db'}"])
        wall = time.perf_counter() - t0
        rep = json.loads((d / "opt" / "optimize.json").read_text())
        from controller.db import ResultsDB

        db = ResultsDB(f"sqlite:///{d / 'o.db'}")
        runs = [db.get(r["run_id"]) for r in db.query(limit=10)]
        run_s = sum((r.get("ended_unix") or 0) - (r.get("started_unix") or 0) for r in runs)
        out["optimize"] = {
            "exit_code": rc,
            "wall_s": round(wall, 3),
            "quantize_s": rep["timing_s"]["quantize"],
            "device_runs_s": round(run_s, 3),
            "overhead_s": round(wall - run_s - rep["timing_s"]["quantize"], 3),
            "overhead_share": round((wall - run_s - rep["timing_s"]["quantize"]) / wall, 3),
        }
    out["target"] = "quantize well under 60 s"
    out["pass"] = out["quantize_s"] < 60
    print(json.dumps(out, indent=1))
    res = ROOT / "bench" / "results" / "quantize.json"
    res.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {res}")


if __name__ == "__main__":
    main()
