"""A sweep's overhead beyond its runs (issue 23), measured in one run.

`edgebench bench MODEL --sweep threads=1,2 --sweep batch=1,4` (4 points, an
embedded agent, a dynamic-batch CNN the project builds, 1 s measured per
point) is timed end to end in-process; each point's run is timed by the agent
(created_unix -> ended_unix in its result: queueing, worker start, model
load, warm-up, measured phase, placement, result). The overhead is what the
sweep adds beyond that: the plan and shape checks, the push, the sweep
record's writes, storing each result, the table, JSON, Markdown, HTML and
the plot (timed apart: md_html_plot_s). A resumed sweep (the same command again: every point done) is
timed too: its whole cost is overhead.

Figures (bench/results/sweep.json): sweep_wall_s, runs_wall_s (their sum),
overhead_s, overhead_per_point_ms, overhead_share (overhead / sweep wall),
resume_wall_s, md_html_plot_s.

Run: .venv/bin/python bench/bench_sweep.py [--duration 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.cli import main as cli  # noqa: E402
from controller.models.onnx_cnn import build_cnn  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        os.environ["EDGEBENCH_HOME"] = str(d / "home")
        os.environ["EDGEBENCH_DB"] = f"sqlite:///{d / 'r.db'}"
        model = build_cnn(d / "cnn.onnx", size=64, widths=(16, 32, 64), classes=10, batch="N")
        argv = ["bench", str(model), "--sweep", "threads=1,2", "--sweep", "batch=1,4", "--warmup", "0.2",
                "--duration", str(args.duration), "--no-telemetry", "--quiet",
                "--json", str(d / "s.json")]  # fmt: skip
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli(argv)
        wall = time.perf_counter() - t0
        assert rc == 0, rc
        doc = json.loads((d / "s.json").read_text())
        from controller.db import ResultsDB

        db = ResultsDB()
        try:
            results = [db.get(p["run_id"]) for p in doc["points"]]
        finally:
            db.close()
        runs = sum(r["ended_unix"] - r["created_unix"] for r in results)
        t1 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli(argv) == 0
        resume = time.perf_counter() - t1
        # the Markdown table and the HTML page with its plot, timed apart (matplotlib's import is most of it)
        from controller.sweep.runner import write_outputs

        t2 = time.perf_counter()
        write_outputs(
            doc, argparse.Namespace(json=None, md=str(d / "s.md"), html=str(d / "s.html"), plot=None)
        )
        outputs = time.perf_counter() - t2
    n = len(results)
    out = {
        "host": {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "points": n,
        "duration_s_per_point": args.duration,
        "sweep_wall_s": round(wall, 3),
        "runs_wall_s": round(runs, 3),
        "overhead_s": round(wall - runs, 3),
        "overhead_per_point_ms": round(1000 * (wall - runs) / n, 1),
        "overhead_share": round((wall - runs) / wall, 4),
        "resume_wall_s": round(resume, 3),
        "md_html_plot_s": round(outputs, 3),
        "note": "overhead includes the embedded agent's start and stop; --html adds md_html_plot_s",
    }
    (ROOT / "bench" / "results" / "sweep.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
