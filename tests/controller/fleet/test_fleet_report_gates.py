"""Validate cells in the fleet reports show each gate's value against its
threshold (terminal, Markdown, HTML, JUnit), from the agent's own gate
evaluation of a validation summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from agent.spec import ValidateSpec
from agent.validate.gates import evaluate as run_gates
from controller.fleet import gates as fleet_gates
from controller.fleet import report


def _item(mask_iou: float) -> dict:
    validation = {"outputs": [{"name": "mask", "mask_iou": mask_iou}], "passed": mask_iou >= 0.8}
    result = {
        "status": "completed",
        "validation": validation,
        "gates": run_gates(validation, ValidateSpec(gates={"min_mask_iou": {"*": 0.8}})),
    }
    gates = fleet_gates.evaluate(result, {})
    status = "passed" if all(g["passed"] for g in gates) else "gate_failed"
    return {"job": "val", "board": "b0", "model": "det.onnx", "kind": "validate", "status": status,
            "reason": None, "run_id": "r1", "gates": gates, "result": result}  # fmt: skip


def test_validate_cells_show_value_against_threshold() -> None:
    ok, bad = _item(0.8312), {**_item(0.62), "board": "b1", "run_id": "r2"}
    items = [ok, bad]
    assert "mask_iou 0.831 >= 0.8" in report.cell_text(ok)
    assert "mask_iou 0.62 < 0.8" in report.cell_text(bad)
    assert "mask_iou 0.831 >= 0.8" in report.terminal("p", items)
    md = report.markdown("p", items)
    assert "mask_iou 0.831 >= 0.8" in md and "mask_iou 0.62 < 0.8" in md
    page = report.render_html("p", items)
    assert "mask_iou 0.831 &gt;= 0.8" in page and "mask_iou 0.62 &lt; 0.8" in page
    cases = {c.get("name"): c for s in ET.fromstring(report.junit("p", items)) for c in s}
    assert cases["b0.min_mask_iou"].findtext("system-out") == "mask_iou 0.831 >= 0.8"
    assert cases["b0.min_mask_iou"].find("failure") is None
    assert "0.62" in cases["b1.min_mask_iou"].find("failure").get("message")
    assert cases["b1.min_mask_iou"].findtext("system-out") == "mask_iou 0.62 < 0.8"
