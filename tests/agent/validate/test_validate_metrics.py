"""The validate metrics on hand-computed cases: what each one sees and what it
is blind to, box matching, and the gates' reading of the summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.errors import BadInput
from agent.spec import ValidateSpec
from agent.validate import boxes, gates, metrics


def test_tensor_metrics_by_hand():
    ref = np.array([3.0, 4.0])  # |ref| = 5
    m = metrics.tensor_metrics(np.array([3.0, 5.0]), ref)  # error (0, 1)
    assert m["cosine"] == pytest.approx(29 / (5 * math.sqrt(34)))
    assert m["nmse"] == pytest.approx(1 / 25)
    assert m["sqnr_db"] == pytest.approx(10 * math.log10(25))
    assert m["max_abs_err"] == 1.0
    exact = metrics.tensor_metrics(ref, ref)
    assert (
        exact["cosine"] == pytest.approx(1.0)
        and exact["nmse"] == 0
        and exact["sqnr_db"] == metrics.SQNR_CAP_DB
    )
    zero = metrics.tensor_metrics(np.zeros(2), np.zeros(2))
    assert zero["cosine"] == 1.0 and zero["nmse"] == 0.0


def test_cosine_is_blind_to_a_scaled_probability_map_and_mask_iou_is_not():
    ref = np.zeros((1, 8, 8))
    ref[0, 2:5, 2:6] = 0.95  # a 3x4 text blob
    out = ref * 0.5  # the same map at half scale: every pixel under 0.5
    m = metrics.sample_metrics(out, ref, mask_threshold=0.5)
    assert m["cosine"] == pytest.approx(1.0) and m["mask_iou"] == 0.0
    shifted = np.zeros_like(ref)
    shifted[0, 3:6, 2:6] = 0.95  # one row down: 8 of 16 pixels overlap
    assert metrics.mask_iou(shifted, ref, 0.5) == pytest.approx(8 / 16)
    assert (
        metrics.mask_iou(np.zeros_like(ref), np.zeros_like(ref), 0.5) == 1.0
    )  # nothing to find, nothing found


def test_topk_agreement_counts_positions_of_a_sequence():
    ref = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])  # argmax 1, 0; softmax rows
    out = np.array([[0.2, 0.1, 0.7], [0.5, 0.4, 0.1]])  # argmax 2, 0
    top1, topk = metrics.topk_agreement(out, ref, k=2)
    assert top1 == 0.5 and topk == 0.5  # class 1 is third in row 0 of out
    top1, topk = metrics.topk_agreement(out, ref, k=3)
    assert topk == 1.0
    m = metrics.sample_metrics(out[None], ref[None], 0.5)  # a batch axis of 1 is dropped
    assert m["top1_agreement"] == 0.5 and "mask_iou" not in m
    # a 2-D probability map is a map, not 8 rows of 8-class scores
    grid = np.zeros((1, 8, 8))
    grid[0, 2:4, 2:4] = 0.9
    m = metrics.sample_metrics(grid, grid, 0.5)
    assert "top1_agreement" not in m and m["mask_iou"] == 1.0


def test_summary_reads_the_worst_where_the_gate_does_and_lists_worst_samples():
    s = metrics.OutputStats("y")
    for cos, nmse, iou in [(0.99, 0.01, 1.0), (0.90, 0.20, 0.0), (0.95, 0.05, 0.5)]:
        s.add({"cosine": cos, "nmse": nmse, "mask_iou": iou})
    summ = s.summary()
    assert summ["cosine"] == 0.90 and summ["cosine_mean"] == pytest.approx(0.9466666)
    assert summ["nmse"] == 0.20 and summ["mask_iou"] == pytest.approx(0.5) and summ["mask_iou_min"] == 0.0
    worst = s.worst(2)
    assert [w["sample"] for w in worst if w["metric"] == "cosine"] == [1, 2]
    assert [w["sample"] for w in worst if w["metric"] == "nmse"] == [1, 2]
    assert [w["sample"] for w in worst if w["metric"] == "mask_iou"] == [1, 2]


def test_gates_read_the_summary_and_name_the_worst_sample():
    validation = {
        "outputs": [{"name": "maps", "cosine": 0.90, "mask_iou": 0.2}, {"name": "cls", "cosine": 0.999}],
        "worst": [{"sample": 4, "output": "maps", "metric": "cosine", "value": 0.90}],
    }
    spec = ValidateSpec(gates={"min_cosine": {"*": 0.95}, "min_mask_iou": {"maps": 0.5}})
    result = {(g["name"], g["output"]): g for g in gates.evaluate(validation, spec)}
    assert result[("min_cosine", "maps")]["passed"] is False
    assert (
        result[("min_cosine", "maps")]["message"] == "maps: cosine 0.9 misses >= 0.95 (worst sample 4: 0.9)"
    )
    assert result[("min_cosine", "cls")]["passed"] is True
    assert (
        result[("min_mask_iou", "maps")]["passed"] is False
        and result[("min_mask_iou", "maps")]["value"] == 0.2
    )
    nmse = gates.evaluate(
        {"outputs": [{"name": "y", "nmse": None}]}, ValidateSpec(gates={"max_nmse": {"y": 1}})
    )
    assert nmse[0]["passed"] is False and "undefined" in nmse[0]["message"]


def test_validate_spec_refuses_what_cannot_be_judged():
    for bad in (
        ValidateSpec(gates={"min_cosin": {"*": 0.9}}),
        ValidateSpec(gates={"min_cosine": {"*": float("nan")}}),
        ValidateSpec(gates={"min_cosine": {}}),
        ValidateSpec(mask_threshold=1.5),
        ValidateSpec(output_quantization={"y": [0.0, 3]}),
    ):
        with pytest.raises(BadInput):
            bad.check()


# -- boxes ---------------------------------------------------------------------
def test_box_layouts_parse_and_convert():
    lay = boxes.Layout.parse("cxcywh,score,_,class")
    assert (lay.box, lay.score, lay.cls, lay.width) == ("cxcywh", 4, 6, 7)
    rows = np.array([[10.0, 20.0, 4.0, 6.0, 0.9, 0.0, 1.0]])
    assert boxes.xyxy(rows, "cxcywh").tolist() == [[8.0, 17.0, 12.0, 23.0]]
    assert boxes.xyxy(np.array([[1.0, 2.0, 3.0, 4.0]]), "yxyx").tolist() == [[2.0, 1.0, 4.0, 3.0]]
    assert boxes.xyxy(np.array([[1.0, 2.0, 3.0, 4.0]]), "xywh").tolist() == [[1.0, 2.0, 4.0, 6.0]]
    for bad in ("", "xyxz,score", "xyxy,conf"):
        with pytest.raises(BadInput):
            boxes.Layout.parse(bad)


def test_iou_by_hand():
    a = np.array([[0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0]])
    assert boxes.iou_matrix(a, b).tolist() == [[pytest.approx(1 / 7), 0.0]]


def test_box_matching_counts_recall_precision_and_classes():
    lay = boxes.Layout.parse("xyxy,score,class")
    ref = np.array([[0, 0, 10, 10, 0.9, 1], [20, 20, 30, 30, 0.8, 2], [0, 0, 0, 0, 0.0, 0]], float)  # padded
    same = ref.copy()
    m = boxes.match(same, ref, lay)
    assert m == {"box_recall": 1.0, "box_precision": 1.0, "box_count_agreement": 1.0, "boxes_ref": 2.0,
                 "boxes_out": 2.0}  # fmt: skip
    out = np.array([[1, 1, 10, 10, 0.9, 1], [20, 20, 30, 30, 0.8, 3], [50, 50, 60, 60, 0.7, 1]], float)
    m = boxes.match(out, ref, lay)
    # box 1 matches (IoU 0.81); box 2 has the wrong class; box 3 is extra
    assert (
        m["box_recall"] == 0.5
        and m["box_precision"] == pytest.approx(1 / 3)
        and m["box_count_agreement"] == 0
    )
    collapsed = np.zeros_like(ref)  # a detector that finds nothing
    m = boxes.match(collapsed, ref, lay)
    assert m["box_recall"] == 0.0 and m["box_precision"] == 1.0 and m["boxes_out"] == 0
