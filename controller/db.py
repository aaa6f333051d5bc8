"""Results DB (SQLAlchemy Core): one row per run, upserted by run_id, with the
headline figures as columns and the full result JSON beside them.

SQLite under the user data dir by default; any SQLAlchemy URL via --db or
$EDGEBENCH_DB (e.g. postgresql+psycopg://...). The schema is versioned with
Alembic (controller/migrations/): opening a DB upgrades it in place; the
tables below mirror the newest revision."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agent.errors import BadInput
from controller.paths import data_dir

# an ambiguous run id prefix lists at most this many candidates
AMBIGUOUS_SHOWN = 5

metadata = sa.MetaData()
runs = sa.Table(
    "runs",
    metadata,
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
    # a fleet result's plan, job and inventory board (migration 0002)
    sa.Column("plan_id", sa.String(64)),
    sa.Column("job", sa.String(255)),
    sa.Column("board", sa.String(255)),
)
# the history and runs filters: model (name or sha) and board over time, newest first
for _name, _cols in {
    "ix_runs_created": ["created"],
    "ix_runs_model_sha_created": ["model_sha256", "created"],
    "ix_runs_model_name_created": ["model_name", "created"],
    "ix_runs_board_created": ["board", "created"],
    "ix_runs_agent_created": ["agent", "created"],
    "ix_runs_plan": ["plan_id", "job", "board"],
}.items():
    sa.Index(_name, *(runs.c[c] for c in _cols))
HEAD = "0002"  # the newest migration: a DB already there skips Alembic entirely
# fleet plans (controller/fleet/store.py): a plan, and one row per work item
# (job, model, board) that says where the item stands and which run holds it
fleet_plans = sa.Table(
    "fleet_plans",
    metadata,
    sa.Column("plan_id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float),
    sa.Column("plan_path", sa.Text),
    sa.Column("status", sa.String(16)),
    sa.Column("plan_json", sa.Text),
)
fleet_items = sa.Table(
    "fleet_items",
    metadata,
    sa.Column("plan_id", sa.String(64), primary_key=True),
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("board", sa.String(255), primary_key=True),
    sa.Column("model", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(16)),
    sa.Column("status", sa.String(16)),
    sa.Column("reason", sa.Text),
    sa.Column("run_id", sa.String(64)),
    sa.Column("attempts", sa.Integer),
    sa.Column("bytes_pushed", sa.BigInteger),
    sa.Column("started", sa.Float),
    sa.Column("ended", sa.Float),
    sa.Column("gates_json", sa.Text),
)


def default_url() -> str:
    env = os.environ.get("EDGEBENCH_DB")
    if env:
        return env
    d = data_dir()
    d.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{d / 'results.db'}"


class ResultsDB:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        # SQLite: wait for another writer (a second controller) up to 30 s, not pysqlite's 5
        args = {"timeout": 30} if self.url.startswith("sqlite") else {}
        self.engine = sa.create_engine(self.url, connect_args=args)
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def store(self, result: dict, agent: str = "") -> None:
        """Upsert one result document (select-then-update keeps it dialect-neutral)."""
        row = row_of(result, agent)
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == row["run_id"])).first()
            if exists:
                conn.execute(runs.update().where(runs.c.run_id == row["run_id"]).values(**row))
            else:
                conn.execute(runs.insert().values(**row))

    def get(self, run_id: str) -> dict | None:
        """The result document of a run; a unique prefix of its id also finds it.
        A prefix several runs share raises BadInput naming them (newest first)."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(runs.c.result_json).where(runs.c.run_id == run_id)).first()
            if r is None:
                like = runs.c.run_id.like(run_id.replace("%", "") + "%")
                rows = conn.execute(
                    sa.select(runs.c.run_id, runs.c.result_json)
                    .where(like)
                    .order_by(runs.c.run_id.desc())
                    .limit(AMBIGUOUS_SHOWN + 1)
                ).all()
                if len(rows) > 1:
                    total = conn.execute(sa.select(sa.func.count()).select_from(runs).where(like)).scalar()
                    raise BadInput(_ambiguous(run_id, [row[0] for row in rows], int(total or 0)))
                r = (rows[0][1],) if rows else None
        return json.loads(r[0]) if r else None

    def query(
        self,
        limit: int | None = 20,
        model: str | None = None,
        agent: str | None = None,
        kind: str | None = None,
        status: str | None = None,
    ) -> list[dict]:
        """Rows (without the JSON), newest first."""
        cols = [c for c in runs.c if c.name != "result_json"]
        q = sa.select(*cols).order_by(runs.c.created.desc(), runs.c.run_id.desc())
        if model:
            q = q.where(sa.or_(runs.c.model_name == model, runs.c.model_sha256.like(model + "%")))
        if agent:
            q = q.where(runs.c.agent == agent)
        if kind:
            q = q.where(runs.c.kind == kind)
        if status:
            q = q.where(runs.c.status == status)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def history(
        self,
        model: str,
        board: str | None = None,
        kind: str | None = None,
        limit: int | None = 100,
        with_json: bool = True,
    ) -> list[dict]:
        """A model's runs (name, or sha256 prefix) on a board (the fleet board
        name, or the agent the run was stored under), the newest ``limit``,
        oldest first. Index-backed: (model_*, created), (board|agent, created)."""
        cols = [c for c in runs.c if with_json or c.name != "result_json"]
        hexish = len(model) >= 6 and all(ch in "0123456789abcdef" for ch in model.lower())
        cond = runs.c.model_name == model
        if hexish:  # a range, not LIKE: the index serves it on every dialect
            m = model.lower()
            cond = sa.or_(cond, sa.and_(runs.c.model_sha256 >= m, runs.c.model_sha256 < m + "g"))
        q = sa.select(*cols).where(cond).order_by(runs.c.created.desc(), runs.c.run_id.desc())
        if board:
            q = q.where(sa.or_(runs.c.board == board, runs.c.agent == board))
        if kind:
            q = q.where(runs.c.kind == kind)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        return rows[::-1]

    def baseline(
        self,
        model_sha256: str,
        label: tuple[str, str | None],
        hostname: str | None,
        board: str | None,
        before: tuple[float, str] | None = None,
    ) -> dict | None:
        """The newest completed run of this model on this board (agent hostname
        and board) that carries ``label`` (key, value; value None: any value),
        and, with ``before`` = (created, run_id), was created before that run."""
        key, value = label
        q = (
            sa.select(runs.c.run_id, runs.c.created, runs.c.result_json)
            .where(runs.c.model_sha256 == model_sha256, runs.c.status == "completed")
            .order_by(runs.c.created.desc(), runs.c.run_id.desc())
        )
        if before is not None:
            created, run_id = before
            q = q.where(
                sa.or_(runs.c.created < created, sa.and_(runs.c.created == created, runs.c.run_id < run_id))
            )
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                # labels and the board live in the JSON: filtered here, portable across dialects
                doc = json.loads(r.result_json)
                labels = doc.get("labels") or {}
                agent = doc.get("agent") or {}
                if key not in labels or (value is not None and str(labels[key]) != value):
                    continue
                if agent.get("hostname") == hostname and agent.get("board") == board:
                    return doc
        return None


def _ambiguous(prefix: str, ids: list[str], total: int) -> str:
    more = f" and {total - AMBIGUOUS_SHOWN} more" if total > AMBIGUOUS_SHOWN else ""
    return f"ambiguous run id {prefix!r}: {total} runs match: {', '.join(ids[:AMBIGUOUS_SHOWN])}{more}"


def revision(engine: sa.engine.Engine) -> str | None:
    """The DB's Alembic revision; None when it has none (new, or made before migrations)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("select version_num from alembic_version")).scalar()


# Alembic's environment lives in module globals (alembic.context, alembic.op):
# two threads opening a DB at once (a fleet's board threads) must not migrate
# at the same time in one process
_MIGRATE_LOCK = threading.Lock()


def migrate(engine: sa.engine.Engine) -> None:
    """Bring the DB to HEAD in place. A DB from before migrations (a runs
    table, no alembic_version) is stamped 0001 first: that revision is its schema."""
    if revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    with _MIGRATE_LOCK:
        if revision(engine) == HEAD:  # another thread did it while this one waited
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).resolve().parent / "migrations"))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            insp = sa.inspect(conn)
            if not insp.has_table("alembic_version") and insp.has_table("runs"):
                command.stamp(cfg, "0001")
            command.upgrade(cfg, "head")


def row_of(result: dict, agent: str = "") -> dict[str, Any]:
    lat = result.get("latency_ms") or {}
    model = result.get("model") or {}
    placement = result.get("placement") or {}
    gates = result.get("gates") or []
    return {
        "run_id": result["run_id"],
        "agent": agent or (result.get("agent") or {}).get("hostname", ""),
        "kind": result.get("kind"),
        "status": result.get("status"),
        "model_name": model.get("name"),
        "model_sha256": model.get("sha256"),
        "created": result.get("created_unix") or time.time(),
        "throughput_ips": result.get("throughput_ips"),
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "fallback": placement.get("fallback") if placement else None,
        "gates_passed": all(g.get("passed", True) for g in gates) if gates else None,
        "result_json": json.dumps(result),
    }
