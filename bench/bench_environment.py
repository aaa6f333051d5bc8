"""The environment probe's cost per run (issue 23), measured side by side.

Per run the agent does, besides the run itself: one ``probe`` at the start
(governors, devfreq, Jetson clocks, swap, thermal trips: agent/environment/
probe.py), two process snapshots around the measured phase and one
comparison (agent/environment/procs.py).

Figures (bench/results/environment.json):

- probe_ms[board]: one probe over each fixture tree and over the live root
  (the best of REPEAT, wall clock);
- snapshot_ms: one psutil snapshot of every process on this machine
  (``process_count`` says how many), own_pids_ms, busy_ms (the comparison);
- per_run_ms: probe (AGX Orin tree) + 2 snapshots + own_pids + comparison;
- baseline_ms: the telemetry sampler's own per-run setup measured in the
  same run (SysfsReader discovery + first read of the same tree), and
  per_run_over_baseline, the ratio;
- share_of_default_run: per_run_ms over the default 11 s run (1 s warm-up
  + 10 s measured), the fraction of a run's wall time the probe adds.

Run: .venv/bin/python bench/bench_environment.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import profiles  # noqa: E402
from agent.environment import procs  # noqa: E402
from agent.environment.probe import probe  # noqa: E402
from agent.rootfs import RootFS  # noqa: E402
from agent.telemetry.sysfs import SysfsReader  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
BOARDS = ("agx-orin", "agx-orin-r36", "orin-nano", "xavier-nx", "jetson-nano", "imx8mp", "am62a", "x86")


def best_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        best = min(best, (time.perf_counter_ns() - t0) / 1e6)
    return round(best, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    probe_ms = {}
    for board in (*BOARDS, "/"):
        root = RootFS(FIXTURES / board if board != "/" else "/")
        prof = profiles.resolve(root, "auto")
        probe_ms[board if board != "/" else "live"] = best_ms(lambda r=root, p=prof: probe(r, p), args.repeat)
    snap = procs.Snapshot()
    snapshot_ms = best_ms(procs.Snapshot, max(5, args.repeat // 3))
    own_ms = best_ms(lambda: procs.own_pids([]), args.repeat)
    end = procs.Snapshot()
    mine = procs.own_pids([])
    busy_ms = best_ms(lambda: procs.busy_others(snap, end, mine), args.repeat)
    orin = RootFS(FIXTURES / "agx-orin")
    prof = profiles.resolve(orin, "auto")

    def sampler_setup() -> None:
        rd = SysfsReader(orin, prof)
        rd.read()
        rd.close()

    baseline_ms = best_ms(sampler_setup, args.repeat)
    per_run = probe_ms["agx-orin"] + 2 * snapshot_ms + own_ms + busy_ms
    out = {
        "host": {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "repeat": args.repeat,
        "probe_ms": probe_ms,
        "process_count": len(end.cpu),
        "snapshot_ms": snapshot_ms,
        "own_pids_ms": own_ms,
        "busy_ms": busy_ms,
        "per_run_ms": round(per_run, 3),
        "baseline": "SysfsReader discovery + first read of the AGX Orin tree (the sampler's per-run setup)",
        "baseline_ms": baseline_ms,
        "per_run_over_baseline": round(per_run / baseline_ms, 2),
        "share_of_default_run": round(per_run / 11_000.0, 6),
    }
    dest = ROOT / "bench" / "results" / "environment.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
