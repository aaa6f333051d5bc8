"""The history and runs filters over a 100,000-run results DB.

Builds the DB through the migrations (ResultsDB), fills it with 100,000 runs
(50 boards x 20 model variants x 100 runs over time, ~1 KB of result JSON
each), then times what `edgebench history` and `edgebench runs` ask: the
newest 100 runs of one model on one board (by name and by sha prefix, with
their JSON, as history reads them), and the runs filters (newest 20; by
model, by kind+status, by agent). Target: each under 200 ms.

Figures (bench/results/history_db.json): per backend, each query's median
and max of 7 timed calls (after one warm-up), ms; rows; DB build seconds.
SQLite always; PostgreSQL too when EDGEBENCH_TEST_PG_URL is set (its runs
rows from this bench are removed afterwards).

Run: .venv/bin/python bench/bench_history_db.py [--runs 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from controller.db import ResultsDB, runs  # noqa: E402
from controller.report import history  # noqa: E402

BOARDS, MODELS = 50, 20
TARGET_MS = 200.0


def _rows(n: int, prefix: str):
    per = n // (BOARDS * MODELS)
    shas = [hashlib.sha256(f"m{m}".encode()).hexdigest() for m in range(MODELS)]
    t0 = 1.7e9
    k = 0
    for r in range(per):
        for b in range(BOARDS):
            for m in range(MODELS):
                k += 1
                ips = 100.0 + m + (r % 7)
                doc = {
                    "run_id": f"{prefix}{k:08d}",
                    "kind": "bench",
                    "status": "completed" if k % 50 else "failed",
                    "created_unix": t0 + k * 60.0,
                    "model": {"name": f"model-{m}.onnx", "sha256": shas[m], "format": "onnx"},
                    "agent": {"hostname": f"board-{b}", "profile": "orin-nx"},
                    "latency_ms": {"p50": 1000 / ips, "p99": 1200 / ips},
                    "throughput_ips": ips,
                    "labels": {"variant": "int8"},
                    "pad": "x" * 700,
                }
                yield {
                    "run_id": doc["run_id"],
                    "agent": f"10.0.{b}.1:50551",
                    "kind": "bench",
                    "status": doc["status"],
                    "model_name": doc["model"]["name"],
                    "model_sha256": shas[m],
                    "created": doc["created_unix"],
                    "throughput_ips": ips,
                    "p50_ms": 1000 / ips,
                    "p99_ms": 1200 / ips,
                    "fallback": False,
                    "gates_passed": True,
                    "result_json": json.dumps(doc),
                    "plan_id": f"P{r:04d}",
                    "job": "cls",
                    "board": f"board-{b}",
                }


def fill(db: ResultsDB, n: int, prefix: str) -> float:
    t = time.perf_counter()
    batch: list[dict] = []
    with db.engine.begin() as conn:
        for row in _rows(n, prefix):
            batch.append(row)
            if len(batch) == 5000:
                conn.execute(runs.insert(), batch)
                batch = []
        if batch:
            conn.execute(runs.insert(), batch)
    return time.perf_counter() - t


def timed(fn, repeat: int = 7) -> dict:
    fn()  # warm-up: connection pool, statement cache
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(ts), 2), "max_ms": round(max(ts), 2), "rows": len(out)}


def measure(url: str, n: int, prefix: str) -> dict:
    db = ResultsDB(url)
    build_s = fill(db, n, prefix)
    sha = hashlib.sha256(b"m7").hexdigest()
    q = {
        "history_name_board": lambda: db.history("model-7.onnx", "board-31", limit=100),
        "history_sha_prefix_board": lambda: db.history(sha[:12], "board-31", limit=100),
        "history_analyse": lambda: history.analyse(db.history("model-7.onnx", "board-31", limit=100)),
        "runs_newest_20": lambda: db.query(limit=20),
        "runs_model": lambda: db.query(limit=20, model="model-7.onnx"),
        "runs_kind_status": lambda: db.query(limit=20, kind="bench", status="failed"),
        "runs_agent": lambda: db.query(limit=20, agent="10.0.31.1:50551"),
    }
    res = {"rows": n, "build_s": round(build_s, 1), "queries": {k: timed(f) for k, f in q.items()}}
    res["all_under_target"] = all(v["max_ms"] < TARGET_MS for v in res["queries"].values())
    if not url.startswith("sqlite"):
        with db.engine.begin() as conn:
            conn.execute(runs.delete().where(runs.c.run_id.like(prefix + "%")))
    db.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    args = ap.parse_args()
    out = {"machine": {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]}, "target_ms": TARGET_MS}
    with tempfile.TemporaryDirectory() as d:
        out["sqlite"] = measure(f"sqlite:///{d}/h.db", args.runs, "bh-")
    pg = os.environ.get("EDGEBENCH_TEST_PG_URL")
    if pg:
        if pg.startswith("postgresql://"):
            pg = "postgresql+psycopg://" + pg[len("postgresql://") :]
        out["postgresql"] = measure(pg, args.runs, f"bh{int(time.time())}-")
        with sa.create_engine(pg).connect() as conn:
            out["postgresql"]["server_version"] = conn.execute(sa.text("show server_version")).scalar()
    print(json.dumps(out, indent=1))
    if args.runs == 100_000:
        (ROOT / "bench" / "results" / "history_db.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
