"""validate's device-side cost per sample: a bare loop of ``session.run`` over
the same samples plus the same metric arithmetic in numpy (cosine, NMSE,
SQNR, max error, top-k agreement), against a full validate run through the
real worker entry (``agent.runs.worker.entry``: reference read and fitted,
every sample fed, timed, dequantized and compared, placement off).

Both sides run in a fresh spawned process on the same ~1 ms model
(controller.models.onnx_cnn.tiny_cnn), one thread, in ABBA order over several
rounds; each side's figure is samples per second of its sample loop (the
worker's own measured span for validate). The ratio is bare / validate time
per sample, i.e. validate's throughput over the bare loop's. Target >= 0.9.

    .venv/bin/python bench/bench_validate.py [--rounds 6] [--samples 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_harness import edgebench  # noqa: E402  (the worker-entry run, shared with the harness bench)


def bare(model: str, ref: str, q: mp.Queue) -> None:
    """session.run over every sample, then numpy's metrics on its outputs."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    with np.load(ref) as z:
        x, y = z["inputs/" + name], z["outputs/" + sess.get_outputs()[0].name]
    run = sess.run
    run(None, {name: x[:1]})  # the same cold run validate pays apart
    t0 = time.perf_counter()
    for i in range(x.shape[0]):
        out = run(None, {name: x[i : i + 1]})[0].reshape(y[i].shape).astype(np.float64)
        r = y[i].astype(np.float64)
        err = out - r
        sig, noise = float(np.dot(r, r)), float(np.dot(err, err))
        _ = float(np.dot(out, r)) / (np.linalg.norm(out) * np.linalg.norm(r))  # cosine
        _ = noise / sig, 10 * np.log10(sig / max(noise, 1e-30)), float(np.abs(err).max())
        _ = np.argmax(out) == np.argmax(r), np.argmax(r) in np.argpartition(-out, 4)[:5]
    q.put(x.shape[0] / (time.perf_counter() - t0))


def _store(state: Path, path: Path) -> str:
    from agent.store.paths import artifact_path

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    dst = artifact_path(state, sha)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, dst)
    return sha


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    import numpy as np

    from controller.cli import main as cli
    from controller.models.onnx_cnn import tiny_cnn

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        model = tiny_cnn(state / "tiny.onnx")
        x = np.random.default_rng(0).standard_normal((args.samples, 3, 96, 96)).astype(np.float32)
        np.savez(state / "x.npz", image=x)
        ref = state / "ref.npz"
        assert cli(["reference", str(model), "--inputs", str(state / "x.npz"), "--out", str(ref)]) == 0
        spec = {
            "kind": "validate",
            "model_sha256": _store(state, model),
            "reference_sha256": _store(state, ref),
            "threads": 1,
            "placement": False,
            "validation": {"gates": {"min_cosine": {"*": 0.99}}},
        }
        ctx = mp.get_context("spawn")

        def run_bare() -> float:
            q = ctx.Queue()
            p = ctx.Process(target=bare, args=(str(model), str(ref), q))
            p.start()
            sps = q.get()
            p.join()
            return sps

        rows = []
        for r in range(args.rounds):
            run_dir = state / "runs" / f"r{r}"
            run_dir.mkdir(parents=True)
            if r % 2 == 0:  # ABBA: a slow spell is as likely to hit either side
                b = run_bare()
                data = edgebench(spec, str(run_dir))
            else:
                data = edgebench(spec, str(run_dir))
                b = run_bare()
            v = data["throughput_ips"]
            rows.append({"bare_samples_per_s": b, "validate_samples_per_s": v, "ratio": v / b})
            print(f"round {r}: bare {b:8.1f} samples/s  validate {v:8.1f} samples/s  ratio {v / b:.4f}")
        ratio = statistics.median(r["ratio"] for r in rows)
        out = {
            "model": "tiny_cnn (controller.models.onnx_cnn), ~1 ms/inference on one thread",
            "samples": args.samples,
            "rounds": rows,
            "median_ratio": ratio,
            "per_sample_overhead_us": statistics.median(
                (1 / r["validate_samples_per_s"] - 1 / r["bare_samples_per_s"]) * 1e6 for r in rows
            ),
            "ratio": ratio,
            "target": 0.9,
            "pass": ratio >= 0.9,
        }
    print(
        f"validate / bare session.run + numpy metrics, per sample = {ratio:.4f} "
        f"(median of {args.rounds} ABBA rounds; target >= 0.9)"
    )
    res = ROOT / "bench" / "results" / "validate.json"
    res.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {res}")


if __name__ == "__main__":
    main()
