"""Telemetry cost, measured side by side in one run.

Figures (written to bench/results/telemetry.json):

- read_us_keep_open / read_us_reopen: one sysfs snapshot of the AGX Orin
  fixture (11 zones, 3 cpufreq policies, GPU devfreq + load, 4 INA3221 rails)
  with the value files kept open and re-read with pread(fd, 0) versus
  open/read/close per file. The ratio says what keeping handles buys.
- sample_cpu_us: CPU time of the sampler thread per sample (sysfs + psutil +
  one JSON line to telemetry.jsonl), measured with thread_time over
  SAMPLE_S seconds at 10 Hz; core_pct = share of one core it costs at 10 Hz
  (sampler CPU seconds / wall seconds). Target: < 1 %.
- process_core_pct: the whole process's CPU over the same idle window (what
  `top` would show for a sampler-only agent), as a cross-check.
- perturbation_ratio: throughput of an in-process ONNX Runtime session loop
  (the demo CNN, 1 intra-op thread) with the sampler thread running at
  10 Hz, divided by the throughput with it off. Blocks alternate
  off/on/on/off... (ABBA) so drift cancels; the ratio is total on-throughput
  over total off-throughput. Target: >= 0.99. On a shared box other
  tenants' preemptions dominate block-to-block noise (block_cv is reported
  so the ratio can be judged); robust_ratio = median iteration latency off /
  on over the same blocks is insensitive to those preemptions, and
  top_quartile_ratio compares the least-disturbed quarter of each kind's
  blocks (the timeit-min idea).

Run: .venv/bin/python bench/bench_telemetry.py [--sample-s 20] [--block-s 0.5] [--pairs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import profiles  # noqa: E402
from agent.rootfs import RootFS  # noqa: E402
from agent.telemetry.sampler import Sampler  # noqa: E402
from agent.telemetry.sysfs import SysfsReader  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "agx-orin"


def read_cost(n: int = 3000) -> dict:
    root = RootFS(FIXTURE)
    prof = profiles.detect(root)
    out = {}
    for keep in (True, False):
        rd = SysfsReader(root, prof, keep_open=keep)
        rd.read()
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time_ns()
            for _ in range(n):
                rd.read()
            best = min(best, (time.process_time_ns() - t0) / n / 1000)
        rd.close()
        out["read_us_keep_open" if keep else "read_us_reopen"] = round(best, 2)
    rd = SysfsReader(root, prof)
    out["files_per_read"] = (
        len(rd.zones) + len(rd.clocks) + sum(c.load is not None for c in rd.clocks) + 2 * len(rd.rails)
    )
    rd.close()
    out["reopen_over_keep_open"] = round(out["read_us_reopen"] / out["read_us_keep_open"], 2)
    return out


def sampler_cost(seconds: float) -> dict:
    root = RootFS(FIXTURE)
    s = Sampler(root, profiles.detect(root), rate_hz=10.0)
    with tempfile.TemporaryDirectory() as d:
        p0 = time.process_time()
        w0 = time.monotonic()
        s.start(Path(d) / "telemetry.jsonl")
        time.sleep(seconds)
        tel = s.stop()
        wall = time.monotonic() - w0
        proc = time.process_time() - p0
    n = tel["samples"]
    return {
        "rate_hz": 10.0,
        "samples": n,
        "achieved_hz": tel["achieved_hz"],
        "sample_cpu_us": round(tel["sampler_cpu_s"] / n * 1e6, 1),
        "core_pct": round(100 * tel["sampler_cpu_s"] / wall, 3),
        "process_core_pct": round(100 * proc / wall, 3),
        "wall_s": round(wall, 2),
    }


def perturbation(block_s: float, pairs: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    from controller.models.onnx_cnn import demo_cnn

    with tempfile.TemporaryDirectory() as d:
        model = demo_cnn(Path(d) / "cnn.onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    x = {"image": np.random.default_rng(0).standard_normal((1, 3, 128, 128), dtype=np.float32)}
    for _ in range(50):  # warm-up
        sess.run(None, x)

    root = RootFS(FIXTURE)
    prof = profiles.detect(root)

    def block(telemetry: bool) -> tuple[int, float, list[float]]:
        s = None
        if telemetry:
            s = Sampler(root, prof, rate_hz=10.0)
            s.start(Path(tmp) / "telemetry.jsonl")
        lat = []
        t0 = time.perf_counter()
        end = t0 + block_s
        now = t0
        while now < end:
            a = time.perf_counter()
            sess.run(None, x)
            now = time.perf_counter()
            lat.append(now - a)
        dt = now - t0
        if s is not None:
            s.stop()
        return len(lat), dt, lat

    tmp = tempfile.mkdtemp()
    order = []
    for i in range(pairs):
        order += [False, True] if i % 2 == 0 else [True, False]  # ABBA: drift cancels
    agg = {False: [0, 0.0], True: [0, 0.0]}
    ips = {False: [], True: []}
    lats = {False: [], True: []}
    for tel in order:
        n, dt, lat = block(tel)
        agg[tel][0] += n
        agg[tel][1] += dt
        ips[tel].append(n / dt)
        lats[tel] += lat
    off_rate = agg[False][0] / agg[False][1]
    on_rate = agg[True][0] / agg[True][1]
    med_off = statistics.median(lats[False])
    med_on = statistics.median(lats[True])
    allips = ips[False] + ips[True]

    def top_quartile(xs: list[float]) -> float:
        xs = sorted(xs, reverse=True)
        return statistics.mean(xs[: max(1, len(xs) // 4)])

    return {
        "model": "demo_cnn (1x3x128x128, 16-128 channels), 1 intra-op thread, CPU EP",
        "block_s": block_s,
        "blocks_each": len(ips[True]),
        "off_ips": round(off_rate, 2),
        "on_ips": round(on_rate, 2),
        "perturbation_ratio": round(on_rate / off_rate, 4),
        "median_pair_ratio": round(
            statistics.median(a / b for a, b in zip(ips[True], ips[False], strict=True)), 4
        ),
        # 1/median latency: robust to the preemptions other tenants cause
        "median_latency_ms_off": round(med_off * 1000, 4),
        "median_latency_ms_on": round(med_on * 1000, 4),
        "robust_ratio": round(med_off / med_on, 4),
        # the least-disturbed blocks of each kind (like timeit's min)
        "top_quartile_ratio": round(top_quartile(ips[True]) / top_quartile(ips[False]), 4),
        "block_cv": round(statistics.pstdev(allips) / statistics.mean(allips), 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sample-s", type=float, default=20.0)
    ap.add_argument("--block-s", type=float, default=0.5)
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "telemetry.json"))
    args = ap.parse_args()

    res = {
        "host": {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "fixture": "tests/fixtures/agx-orin",
    }
    res["read"] = read_cost()
    print(
        f"sysfs snapshot: {res['read']['read_us_keep_open']} us with kept handles, "
        f"{res['read']['read_us_reopen']} us reopening ({res['read']['reopen_over_keep_open']}x)"
    )
    res["sampler"] = sampler_cost(args.sample_s)
    sc = res["sampler"]
    print(
        f"sampler @10 Hz: {sc['sample_cpu_us']} us CPU/sample -> {sc['core_pct']} % of a core "
        f"(target < 1 %); whole process {sc['process_core_pct']} %"
    )
    res["perturbation"] = perturbation(args.block_s, args.pairs)
    pt = res["perturbation"]
    print(
        f"ORT loop: off {pt['off_ips']} ips, on {pt['on_ips']} ips -> ratio {pt['perturbation_ratio']} "
        f"(target >= 0.99); 1/median-latency ratio {pt['robust_ratio']}, "
        f"top-quartile-block ratio {pt['top_quartile_ratio']}, "
        f"median pair {pt['median_pair_ratio']}, block CV {pt['block_cv']}"
    )
    res["targets"] = {
        "core_pct_lt_1": sc["core_pct"] < 1.0,
        "perturbation_ge_0_99": pt["perturbation_ratio"] >= 0.99,
        "perturbation_robust_ge_0_99": pt["robust_ratio"] >= 0.99,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
