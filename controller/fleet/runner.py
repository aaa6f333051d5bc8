"""Start or resume a plan: expand jobs to work items over the selected boards,
record the plan, run it (executor.py) under the live view, and say how it
ended. Exit codes: 1 when an item could not finish (a board dropped or was
unreachable: `fleet resume` continues it), else 3 when a gate failed, else 0."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_RUN_FAILED, BadInput, EdgebenchError
from controller.fleet import plan as fleet_plan
from controller.fleet.executor import Executor, Item, model_key
from controller.fleet.inventory import Board
from controller.fleet.live import Live
from controller.fleet.store import FINISHED, FleetStore, new_plan_id


def probe(boards: list[Board], timeout_s: float = 10.0) -> dict[str, dict]:
    """Each reachable board's fingerprint, asked concurrently (bounded by the
    call timeout); unreachable boards are absent."""

    def one(b: Board) -> tuple[str, dict | None]:
        try:
            with b.client(timeout=timeout_s) as c:
                return b.name, c.info()
        except EdgebenchError:
            return b.name, None

    if not boards:
        return {}
    with ThreadPoolExecutor(max_workers=min(32, len(boards))) as pool:
        return {n: i for n, i in pool.map(one, boards) if i is not None}


def expand(plan: fleet_plan.Plan, infos: dict[str, dict]) -> list[Item]:
    """Work items: for each job, each model x each board its selector matches
    (a profiles selector uses the expected profile, else the reported one)."""
    items = []
    base = plan.base
    for job in plan.jobs:
        boards = [b for b in plan.boards if job.selector.matches(b, (infos.get(b.name) or {}).get("profile"))]
        if not boards:
            raise fleet_plan.no_match(plan, job)
        for m in job.models:
            for b in boards:
                items.append(Item(job, b, m, model_key(m, base)))
    return items


def start(
    path: str,
    store: FleetStore,
    drop_after_s: float,
    tty: bool | None = None,
    labgrid: Any = None,
) -> tuple[str, int]:
    """Run a plan file; (plan_id, exit code). ``labgrid``: a controller.fleet.labgrid.Labgrid
    whose places are the boards and the lock."""
    plan = fleet_plan.load(path, labgrid.boards() if labgrid is not None else None)
    infos = probe(plan.boards)
    items = expand(plan, infos)
    plan_id = new_plan_id()
    doc = {
        "path": str(Path(path).resolve()),
        "inventory": str(plan.inventory_path) if plan.inventory_path else None,
        "boards": [b.to_dict() for b in plan.boards],
        "jobs": [j.to_dict() for j in plan.jobs],
    }
    rows = [
        {
            "job": i.job.name,
            "board": i.board.name,
            "model": i.model_key,
            "kind": i.job.kind,
            "status": "pending",
        }
        for i in items
    ]
    store.create(plan_id, doc["path"], doc, rows)
    print(f"plan {plan_id}", flush=True)
    return plan_id, _execute(plan_id, plan.base, items, store, drop_after_s, infos, tty, labgrid)


def resume(
    plan_id: str, store: FleetStore, drop_after_s: float, tty: bool | None = None, labgrid: Any = None
) -> tuple[str, int]:
    """Continue exactly the unfinished items of a stored plan."""
    rec = store.plan(plan_id)
    if rec is None:
        raise BadInput(f"no such plan: {plan_id}")
    plan_id, doc = rec["plan_id"], rec["plan"]
    boards = {b["name"]: Board.from_dict(b) for b in doc["boards"]}
    inv = doc.get("inventory")
    if labgrid is not None:
        boards.update({b.name: b for b in labgrid.boards()})
    elif inv and Path(inv).is_file():  # addresses and auth may have moved since: the file wins
        from controller.fleet import inventory

        boards.update({b.name: b for b in inventory.load(inv)})
    jobs = {j["name"]: fleet_plan.Job.from_dict(j) for j in doc["jobs"]}
    base = Path(doc["path"]).parent
    items = []
    for row in store.items(plan_id):
        if row["status"] in FINISHED:
            continue
        job = jobs[row["job"]]
        model = next((m for m in job.models if model_key(m, base) == row["model"]), None)
        board = boards.get(row["board"])
        if model is None or board is None:
            raise BadInput(
                f"plan {plan_id}: item {row['job']}/{row['board']} names a model or board no longer known"
            )
        items.append(Item(job, board, model, row["model"], run_id=row["run_id"]))
    order = {name: n for n, name in enumerate(jobs)}  # the plan's order, as a first run goes
    items.sort(key=lambda i: order[i.job.name])
    print(f"plan {plan_id}: {len(items)} unfinished item(s)", flush=True)
    store.set_plan_status(plan_id, "running")
    return plan_id, _execute(plan_id, base, items, store, drop_after_s, None, tty, labgrid)


def _execute(
    plan_id: str,
    base: Path,
    items: list[Item],
    store: FleetStore,
    drop_after_s: float,
    infos: dict[str, dict] | None,
    tty: bool | None,
    labgrid: Any = None,
) -> int:
    boards = sorted({i.board.name for i in items})
    with Live(boards, tty=tty) as live:
        hold = labgrid.hold if labgrid is not None else None
        ex = Executor(
            plan_id, base, items, store, live.event, drop_after_s=drop_after_s, infos=infos, hold=hold
        )
        try:
            ex.run()
        except KeyboardInterrupt:
            print(
                f"interrupted: runs in flight go on; continue with: edgebench fleet resume {plan_id}",
                file=sys.stderr,
            )
            raise
    code = exit_code(store.items(plan_id))
    store.set_plan_status(
        plan_id, {EXIT_OK: "passed", EXIT_GATE_FAILED: "gate_failed"}.get(code, "unfinished")
    )
    return code


def exit_code(items: list[dict]) -> int:
    if any(i["status"] not in FINISHED for i in items):
        return EXIT_RUN_FAILED
    if any(i["status"] == "gate_failed" for i in items):
        return EXIT_GATE_FAILED
    return EXIT_OK
