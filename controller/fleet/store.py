"""Fleet plans in the results DB: the plan, its work items, and each item's
result stored exactly once however often the plan is resumed.

An item is keyed by (plan_id, job, board, model). Storing a result for an
item replaces the run an earlier attempt left (a dropped board's partial
run), in one transaction, so the runs table holds one row per item."""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

import sqlalchemy as sa

from controller.db import ResultsDB, fleet_items, fleet_plans, row_of, runs

# an item in one of these is finished: resume leaves it alone
FINISHED = ("passed", "gate_failed", "skipped")
UNFINISHED = ("pending", "running", "failed", "dropped", "unreachable")


def new_plan_id() -> str:
    """Like run ids: sorts by creation time, unique across controllers."""
    t = time.time()
    return (
        time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int(t * 1000) % 1000:03d}Z-{secrets.token_hex(3)}"
    )


class FleetStore:
    def __init__(self, db: ResultsDB) -> None:
        self.db = db
        self.engine = db.engine
        # board threads write one at a time: SQLite takes one writer, and 50 threads
        # racing for its lock outlast its busy timeout on a loaded host (seen in
        # bench_fleet.py at 50 agents); the writes are small, the queue is short
        self._write = threading.Lock()

    def create(self, plan_id: str, plan_path: str, plan_doc: dict, items: list[dict]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                fleet_plans.insert().values(
                    plan_id=plan_id,
                    created=time.time(),
                    plan_path=plan_path,
                    status="running",
                    plan_json=json.dumps(plan_doc),
                )
            )
            for it in items:
                conn.execute(fleet_items.insert().values(plan_id=plan_id, attempts=0, bytes_pushed=0, **it))

    def plan(self, plan_id: str) -> dict | None:
        """The stored plan (a unique prefix of its id also finds it)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(fleet_plans)
                .where(fleet_plans.c.plan_id.like(plan_id.replace("%", "") + "%"))
                .limit(2)
            ).all()
        exact = [r for r in rows if r.plan_id == plan_id]
        r = exact[0] if exact else rows[0] if len(rows) == 1 else None
        if r is None:
            return None
        return {**dict(r._mapping), "plan": json.loads(r.plan_json)}

    def set_plan_status(self, plan_id: str, status: str) -> None:
        with self._write, self.engine.begin() as conn:
            conn.execute(fleet_plans.update().where(fleet_plans.c.plan_id == plan_id).values(status=status))

    def items(self, plan_id: str) -> list[dict]:
        q = sa.select(fleet_items).where(fleet_items.c.plan_id == plan_id)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        for r in rows:
            r["gates"] = json.loads(r.pop("gates_json") or "[]")
        return sorted(rows, key=lambda r: (r["job"], r["model"], r["board"]))

    def update(self, plan_id: str, key: tuple[str, str, str], **values: Any) -> None:
        """Set fields of one item; key = (job, board, model); ``attempt=True``
        counts one more run started for it; ``add_bytes=N`` adds to the bytes
        pushed for it (summed over attempts: a resume after a push moves none)."""
        if values.pop("attempt", False):
            values["attempts"] = fleet_items.c.attempts + 1
        if "add_bytes" in values:
            values["bytes_pushed"] = fleet_items.c.bytes_pushed + int(values.pop("add_bytes"))
        if "gates" in values:
            values["gates_json"] = json.dumps(values.pop("gates"))
        with self._write, self.engine.begin() as conn:
            conn.execute(fleet_items.update().where(*_where(plan_id, key)).values(**values))

    def store_result(
        self, plan_id: str, key: tuple[str, str, str], result: dict, agent: str, **values: Any
    ) -> None:
        """Store an item's result and its final state, replacing any run an
        earlier attempt at the same item stored: one row per item."""
        run_id = result["run_id"]
        if "gates" in values:
            values["gates_json"] = json.dumps(values.pop("gates"))
        with self._write, self.engine.begin() as conn:
            old = conn.execute(sa.select(fleet_items.c.run_id).where(*_where(plan_id, key))).scalar()
            if old and old != run_id:
                conn.execute(runs.delete().where(runs.c.run_id == old))
            _put_run(conn, plan_id, key, result, agent)
            conn.execute(fleet_items.update().where(*_where(plan_id, key)).values(run_id=run_id, **values))

    def store_side_run(self, plan_id: str, key: tuple[str, str, str], result: dict, agent: str) -> None:
        """A run of an item beyond the one its row names (an optimize item's
        original bench and validate, its optimized validate), under the same
        plan, job and board. A resumed optimize item runs all four again: an
        earlier attempt's runs stay, labelled with their own pipeline id."""
        with self._write, self.engine.begin() as conn:
            _put_run(conn, plan_id, key, result, agent)

    def results(self, plan_id: str) -> list[dict]:
        """Items with their stored result documents (None where none is stored)."""
        items = self.items(plan_id)
        ids = [i["run_id"] for i in items if i["run_id"]]
        docs: dict[str, dict] = {}
        with self.engine.connect() as conn:
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                for r in conn.execute(
                    sa.select(runs.c.run_id, runs.c.result_json).where(runs.c.run_id.in_(chunk))
                ):
                    docs[r.run_id] = json.loads(r.result_json)
        for i in items:
            i["result"] = docs.get(i["run_id"]) if i["run_id"] else None
        return items


def _where(plan_id: str, key: tuple[str, str, str]) -> list[Any]:
    job, board, model = key
    c = fleet_items.c
    return [c.plan_id == plan_id, c.job == job, c.board == board, c.model == model]


def _put_run(conn: Any, plan_id: str, key: tuple[str, str, str], result: dict, agent: str) -> None:
    """The run's row, under its plan, job and board, replacing any row of the same run."""
    row = row_of(result, agent)
    extra = {"plan_id": plan_id, "job": key[0], "board": key[1]} if "plan_id" in runs.c else {}
    conn.execute(runs.delete().where(runs.c.run_id == row["run_id"]))
    conn.execute(runs.insert().values(**row, **extra))
