"""Results DB: upsert by run_id, query helpers, result JSON round trip; on
SQLite and, when EDGEBENCH_TEST_PG_URL is set, a real PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pytest

from controller.db import ResultsDB


def _doc(
    run_id: str, ips: float, model: str = "m.onnx", status: str = "completed", created: float = 1.0
) -> dict:
    return {
        "schema": "edgebench.result/v1",
        "run_id": run_id,
        "kind": "bench",
        "status": status,
        "created_unix": created,
        "model": {"name": model, "sha256": "ab" * 32, "format": "onnx"},
        "agent": {"hostname": "board1"},
        "latency_ms": {"p50": 1.5, "p99": 2.5},
        "throughput_ips": ips,
        "placement": {"fallback": True, "fallback_nodes": [{"name": "n1", "op_type": "CumSum"}]},
        "gates": [{"name": "fallback", "passed": False}],
    }


def _exercise(db: ResultsDB, prefix: str) -> None:
    a, b = f"{prefix}-a", f"{prefix}-b"
    db.store(_doc(a, 10.0, created=100.0), agent="10.0.0.2:7700")
    db.store(_doc(b, 20.0, model="other.tflite", created=200.0))
    db.store(_doc(a, 11.0, created=100.0), agent="10.0.0.2:7700")  # upsert, not a second row
    rows = [r for r in db.query(limit=None) if r["run_id"].startswith(prefix)]
    assert [r["run_id"] for r in rows] == [b, a]  # newest first
    ra = rows[1]
    assert ra["throughput_ips"] == 11.0 and ra["p99_ms"] == 2.5 and ra["fallback"] is True
    assert ra["agent"] == "10.0.0.2:7700" and rows[0]["agent"] == "board1" and ra["gates_passed"] is False
    assert [
        r["run_id"] for r in db.query(model="other.tflite", limit=None) if r["run_id"].startswith(prefix)
    ] == [b]
    assert db.get(a)["placement"]["fallback_nodes"][0]["op_type"] == "CumSum"
    assert db.get(f"{prefix}-nope") is None


def test_sqlite_upsert_and_query(tmp_path):
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.db'}")
    _exercise(db, "run")
    db.close()
    # persisted: a new handle sees the same rows
    db2 = ResultsDB(f"sqlite:///{tmp_path / 'r.db'}")
    assert len(db2.query(limit=None)) == 2
    db2.close()


def test_default_url_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'env.db'}")
    db = ResultsDB()
    db.store(_doc("x", 1.0))
    db.close()
    assert (tmp_path / "env.db").is_file()
    monkeypatch.delenv("EDGEBENCH_DB")
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    db = ResultsDB()
    assert db.url.endswith("home/results.db")
    db.close()


@pytest.mark.serial  # one shared PostgreSQL database
@pytest.mark.skipif(not os.environ.get("EDGEBENCH_TEST_PG_URL"), reason="EDGEBENCH_TEST_PG_URL not set")
def test_postgresql_upsert_and_query():
    url = os.environ["EDGEBENCH_TEST_PG_URL"]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    db = ResultsDB(url)
    _exercise(db, f"pg-{uuid.uuid4().hex[:8]}")
    db.close()
