"""The fleet live view after a board drops: the items marked dropped without
running show no figure, not the one the previous item left on the row."""

from __future__ import annotations

import io
from pathlib import Path

from controller.db import ResultsDB
from controller.fleet.executor import Executor, Item
from controller.fleet.inventory import Board
from controller.fleet.live import Live
from controller.fleet.plan import Job, Selector
from controller.fleet.store import FleetStore


def test_a_dropped_item_shows_no_figure_of_the_item_before(tmp_path: Path) -> None:
    board = Board("b0", "127.0.0.1:1")
    job = Job("j", "bench", [str(tmp_path / "a.onnx")], Selector(all=True), {}, {})
    items = [Item(job, board, str(tmp_path / m), m) for m in ("a.onnx", "b.onnx")]
    store = FleetStore(ResultsDB(f"sqlite:///{tmp_path / 'r.db'}"))
    rows = [
        {"job": "j", "board": "b0", "model": i.model_key, "kind": "bench", "status": "pending"} for i in items
    ]
    store.create("p1", str(tmp_path / "plan.yaml"), {}, rows)
    out = io.StringIO()
    live = Live(["b0"], stream=out, tty=False)
    ex = Executor("p1", tmp_path, items, store, live.event)
    ex._state(items[0], phase="measure")
    ex._done(items[0], "passed", None, "123.4 inf/s")  # the first item's figure
    ex._final(items[1], "dropped", "board dropped: unreachable")
    lines = out.getvalue().splitlines()
    assert any("a.onnx: passed" in x and "123.4 inf/s" in x for x in lines), lines
    dropped = [x for x in lines if "b.onnx: dropped" in x]
    assert dropped and "inf/s" not in dropped[-1], lines
    assert live.rows["b0"]["figure"] == "" and live.rows["b0"]["model"] == "b.onnx"
