"""The results DB's Alembic migrations: a DB made by the schema before fleets
(the runs table that metadata.create_all made, holding real results) is
upgraded in place with its data intact; a new DB starts at head; the fleet
store round-trips on SQLite and, with EDGEBENCH_TEST_PG_URL, PostgreSQL."""

from __future__ import annotations

import os
import time
import uuid

import pytest
import sqlalchemy as sa

from agent.spec import RunSpec
from controller.client import AgentClient
from controller.db import HEAD, ResultsDB, revision, row_of
from controller.fleet.store import FleetStore
from controller.session import Session


def _old_runs_table(md: sa.MetaData) -> sa.Table:
    """controller/db.py's runs table before migrations, column for column."""
    return sa.Table(
        "runs",
        md,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(255)),
        sa.Column("kind", sa.String(16)),
        sa.Column("status", sa.String(16)),
        sa.Column("model_name", sa.String(255)),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("created", sa.Float),
        sa.Column("throughput_ips", sa.Float),
        sa.Column("p50_ms", sa.Float),
        sa.Column("p99_ms", sa.Float),
        sa.Column("fallback", sa.Boolean),
        sa.Column("gates_passed", sa.Boolean),
        sa.Column("result_json", sa.Text),
    )


@pytest.fixture(scope="module")
def real_results(tmp_path_factory, tiny_onnx_model):
    """Two result documents from real runs on an in-process agent."""
    from agent.server.app import AgentServer

    server = AgentServer(state_dir=tmp_path_factory.mktemp("a") / "state")
    addr = server.start()
    docs = []
    try:
        with AgentClient(addr) as c:
            sha = c.push(tiny_onnx_model)
            for _ in range(2):
                spec = RunSpec(kind="bench", model_sha256=sha, model_name="tiny.onnx", duration_s=0.2,
                               warmup_s=0, min_iterations=5, telemetry=False)  # fmt: skip
                docs.append(Session(c).result(c.start_run(spec)))
    finally:
        server.stop(0)
    assert all(d["status"] == "completed" for d in docs)
    return docs


def test_a_db_from_before_migrations_upgrades_in_place_with_its_data(tmp_path, real_results):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    md = sa.MetaData()
    old = _old_runs_table(md)
    md.create_all(engine)
    with engine.begin() as conn:  # what the old ResultsDB.store did
        for d in real_results:
            conn.execute(old.insert().values(**row_of(d, "10.0.0.2:50551")))
        before = [dict(r._mapping) for r in conn.execute(sa.select(old).order_by(old.c.run_id))]
    engine.dispose()

    db = ResultsDB(url)
    assert revision(db.engine) == HEAD
    insp = sa.inspect(db.engine)
    assert {"plan_id", "job", "board"} <= {c["name"] for c in insp.get_columns("runs")}
    assert {"fleet_plans", "fleet_items"} <= set(insp.get_table_names())
    assert "ix_runs_model_sha_created" in {i["name"] for i in insp.get_indexes("runs")}
    with db.engine.connect() as conn:
        after = [dict(r._mapping) for r in conn.execute(sa.text("select * from runs order by run_id"))]
    assert [{k: r[k] for k in before[0]} for r in after] == before  # every old column, every value
    assert all(r["plan_id"] is None and r["board"] is None for r in after)
    for d in real_results:
        assert db.get(d["run_id"]) == d
    assert [r["run_id"] for r in db.query(limit=None)] == sorted(
        (d["run_id"] for d in real_results), reverse=True
    )
    db.close()
    # opening again is a no-op at head
    db = ResultsDB(url)
    assert len(db.query(limit=None)) == 2
    db.close()


def test_a_db_the_first_fleet_code_made_upgrades_too(tmp_path):
    """fleet tables created without migrations (before 0002 existed) are kept."""
    from controller.db import fleet_items, fleet_plans

    url = f"sqlite:///{tmp_path / 'f.db'}"
    engine = sa.create_engine(url)
    md = sa.MetaData()
    _old_runs_table(md)
    fleet_plans.to_metadata(md)
    fleet_items.to_metadata(md)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(fleet_plans.insert().values(plan_id="P1", status="passed", plan_json="{}"))
    engine.dispose()
    db = ResultsDB(url)
    assert revision(db.engine) == HEAD
    assert FleetStore(db).plan("P1")["status"] == "passed"
    db.close()


def _fleet_round_trip(db: ResultsDB, doc: dict) -> None:
    store = FleetStore(db)
    pid = f"P-{uuid.uuid4().hex[:8]}"
    store.create(
        pid, "/p.yaml", {"jobs": []}, [{"job": "j", "board": "b", "model": "m.onnx", "status": "pending"}]
    )
    key = ("j", "b", "m.onnx")
    store.update(pid, key, status="running", attempt=True, add_bytes=100)
    first = {**doc, "run_id": f"{pid}-r1"}
    store.store_result(pid, key, first, "addr", status="passed", gates=[])
    second = {**doc, "run_id": f"{pid}-r2", "created_unix": time.time()}
    store.store_result(pid, key, second, "addr", status="passed", gates=[])  # a re-run replaces the first
    [item] = store.results(pid)
    assert item["run_id"] == second["run_id"] and item["attempts"] == 1 and item["bytes_pushed"] == 100
    assert item["result"]["run_id"] == second["run_id"]
    assert db.get(first["run_id"]) is None
    rows = [r for r in db.query(limit=None, model=doc["model"]["name"]) if r["run_id"].startswith(pid)]
    assert [(r["plan_id"], r["job"], r["board"]) for r in rows] == [(pid, "j", "b")]


def test_fleet_store_on_sqlite(tmp_path, real_results):
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.db'}")
    _fleet_round_trip(db, real_results[0])
    db.close()


@pytest.mark.serial  # one shared PostgreSQL database
@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("EDGEBENCH_TEST_PG_URL"), reason="EDGEBENCH_TEST_PG_URL not set")
def test_fleet_store_and_migrations_on_postgresql(real_results):
    url = os.environ["EDGEBENCH_TEST_PG_URL"]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    db = ResultsDB(url)
    assert revision(db.engine) == HEAD
    _fleet_round_trip(db, real_results[0])
    db.close()
