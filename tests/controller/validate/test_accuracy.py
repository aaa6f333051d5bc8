"""Controller-side accuracy: COCO mAP by pycocotools on cases whose value is
known exactly, label-file checks, and classifier top-k accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agent.errors import BadInput
from agent.validate.decode import Detections
from controller.accuracy import classification, detection


def _truth(boxes_per_image: list[list[tuple[list[float], int]]], cats=(0, 1)) -> dict:
    anns = []
    for k, boxes in enumerate(boxes_per_image):
        for (x1, y1, x2, y2), c in boxes:
            w, h = x2 - x1, y2 - y1
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": c,
                         "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
    return {
        "images": [{"id": k, "width": 200, "height": 200} for k in range(len(boxes_per_image))],
        "annotations": anns,
        "categories": [{"id": c, "name": f"c{c}"} for c in cats],
    }


def test_half_recall_with_a_lower_false_positive_is_51_of_101():
    # one of two truths found exactly (score 0.9) and one false box (0.8): precision 1 up to recall
    # 0.5, then never reaching recall 1; COCO's 101 recall points give 51/101 at every IoU
    truth = _truth([[([0, 0, 50, 50], 0), ([100, 100, 150, 150], 0)]], cats=(0,))
    dets = [Detections([[0, 0, 50, 50], [60, 0, 90, 30]], [0.9, 0.8], [0, 0])]
    r = detection.evaluate(dets, truth)
    assert r["map"] == pytest.approx(51 / 101) and r["map50"] == pytest.approx(51 / 101)
    assert r["per_class"]["0"]["ap"] == pytest.approx(51 / 101)


def test_iou_072_counts_at_half_the_coco_thresholds():
    # IoU 0.72 matches at 0.50..0.70 (5 of the 10 thresholds): AP50 1, mAP 0.5
    truth = _truth([[([0, 0, 100, 100], 0)], [([0, 0, 40, 40], 1)]])
    dets = [Detections([[0, 0, 100, 72]], [0.9], [0]), Detections([[0, 0, 40, 40]], [0.5], [1])]
    r = detection.evaluate(dets, truth)
    assert r["per_class"]["0"] == {"name": "c0", "ap": pytest.approx(0.5), "ap50": pytest.approx(1.0)}
    assert r["per_class"]["1"]["ap"] == pytest.approx(1.0)
    assert r["map"] == pytest.approx(0.75) and r["map50"] == pytest.approx(1.0)


def test_wrong_class_and_no_detections_score_zero():
    truth = _truth([[([0, 0, 50, 50], 0)]], cats=(0, 1))
    assert detection.evaluate([Detections([[0, 0, 50, 50]], [0.9], [1])], truth)["map50"] == 0.0
    r = detection.evaluate([Detections.empty()], truth)
    assert r["map"] == 0.0 and r["map50"] == 0.0
    assert r["per_class"] == {"0": {"name": "c0", "ap": 0.0, "ap50": 0.0}}


def test_agreement_against_the_reference_is_one_for_identical_boxes():
    ref = [Detections([[0, 0, 50, 50], [60, 60, 90, 90]], [0.9, 0.3], [0, 1])]
    assert detection.agreement(ref, ref, score=0.25)["map"] == pytest.approx(1.0)
    # the reference's box below the score is no truth: the device finding only box 0 still agrees
    only_first = [Detections([[0, 0, 50, 50]], [0.9], [0])]
    assert detection.agreement(only_first, ref, score=0.5)["map"] == pytest.approx(1.0)
    assert detection.agreement(only_first, ref, score=0.25)["map"] == pytest.approx(0.5)  # class 1 missed


def _write(tmp_path, doc) -> str:
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(doc))
    return p


def test_labels_that_do_not_fit_the_run_are_bad_input(tmp_path):
    good = _truth([[([0, 0, 50, 50], 0)], [([10, 10, 20, 20], 1)]])
    assert detection.load_labels(_write(tmp_path, good), 2, (100, 100))["images"]
    with pytest.raises(BadInput, match="2 images for 3 samples"):
        detection.load_labels(_write(tmp_path, good), 3, (100, 100))
    with pytest.raises(BadInput, match="outside the 40x100 model input"):
        detection.load_labels(_write(tmp_path, good), 2, (100, 40))
    bad = json.loads(json.dumps(good))
    bad["annotations"][0]["category_id"] = 9
    with pytest.raises(BadInput, match="unknown image or category"):
        detection.load_labels(_write(tmp_path, bad), 2)
    with pytest.raises(BadInput, match="not a readable JSON"):
        detection.load_labels(_write(tmp_path, good).with_name("missing.json"), 2)


def test_classifier_top1_top5_and_its_label_file(tmp_path):
    scores = np.array(
        [[0.1, 0.9, 0, 0, 0, 0, 0], [0.8, 0.1, 0.05, 0.03, 0.02, 0, 0], [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.9]]
    )  # sample 2's class 0 is its lowest score: outside its top 5
    r = classification.accuracy(scores, [1, 1, 0])
    assert r["top1"] == pytest.approx(1 / 3) and r["top5"] == pytest.approx(2 / 3) and r["wrong"] == [1, 2]
    p = tmp_path / "labels.json"
    p.write_text("[1, 1, 0]")
    assert classification.load_labels(p, 3) == [1, 1, 0]
    with pytest.raises(BadInput, match="3 class ids for 4 samples"):
        classification.load_labels(p, 4)
    with pytest.raises(BadInput, match="out of range for 7 classes"):
        classification.accuracy(scores, [1, 1, 7])
    p.write_text('["a"]')
    with pytest.raises(BadInput, match="integer class ids"):
        classification.load_labels(p, 1)
