"""The agent's detector decoders and NMS on tensors built from the documented
layouts (agent/validate/decode.py), where the right boxes are known."""

from __future__ import annotations

import numpy as np
import pytest

from agent.errors import BadInput
from agent.validate import boxfile
from agent.validate.decode import Detections, decode, input_hw_of
from agent.validate.nms import nms

# three candidates of a 3-class YOLOv8 head: cx, cy, w, h, then class scores
YOLO_ROWS = np.array(
    [
        [50, 50, 40, 40, 0.9, 0.1, 0.0],  # class 0, best
        [52, 50, 40, 40, 0.8, 0.0, 0.0],  # class 0, overlaps the first (IoU ~0.9): suppressed
        [50, 50, 40, 40, 0.0, 0.0, 0.7],  # class 2, same place: kept (NMS is class-wise)
        [150, 100, 20, 10, 0.0, 0.6, 0.0],  # class 1, alone
        [10, 10, 4, 4, 0.0005, 0.0, 0.0],  # below the score threshold
    ]
    + [[0, 0, 0, 0, 0, 0, 0]] * 4,  # N > 4+C, as in every real head (the short axis is the channels)
    dtype=np.float32,
)


def test_yolov8_channels_first_and_last_give_the_same_boxes():
    first = decode("yolov8", {"out": YOLO_ROWS.T[None]}, "out", 0.001, 0.5, 300)  # [1, 4+C, N]
    last = decode("yolov8", {"out": YOLO_ROWS[None]}, "out", 0.001, 0.5, 300)  # [1, N, 4+C]
    for d in (first, last):
        assert d.classes.tolist() == [0, 2, 1]
        assert d.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
        assert d.boxes.tolist() == [[30, 30, 70, 70], [30, 30, 70, 70], [140, 95, 160, 105]]


def test_yolov8_max_det_and_clip_to_the_input():
    d = decode("yolov8", {"out": YOLO_ROWS.T[None]}, "out", 0.001, 0.5, 2, input_hw=(100, 155))
    assert len(d) == 2 and d.classes.tolist() == [0, 2]
    d = decode("yolov8", {"out": YOLO_ROWS.T[None]}, "out", 0.001, 0.5, 300, input_hw=(100, 155))
    assert d.boxes[2].tolist() == [140, 95, 155, 100]


def test_yolov5_multiplies_objectness_into_the_class_score():
    rows = np.array(
        [[50, 50, 40, 40, 0.5, 0.8, 0.2], [150, 50, 40, 40, 1.0, 0.1, 0.3]], dtype=np.float32
    )  # cx, cy, w, h, objectness, 2 class probabilities
    d = decode("yolov5", {"o": rows[None]}, "o", 0.35, 0.5, 300)
    assert d.classes.tolist() == [0]  # 0.5*0.8 = 0.4 kept; 1.0*0.3 = 0.3 under 0.35
    assert d.scores.tolist() == pytest.approx([0.4])


def _picodet_outputs(h: int, w: int, classes: int = 3, reg_max: int = 7) -> tuple[dict, list]:
    """PP-PicoDet outputs for an h x w input (scores for all levels, then
    regressions, as PaddleDetection exports them) holding two known boxes."""
    scores, regs, truth = [], [], []
    objects = {8: (3, 2, 1, (2, 3, 3, 1)), 16: (1, 1, 2, (1, 1, 1, 1))}  # stride: row, col, class, l t r b
    for s in (8, 16, 32, 64):
        gh, gw = -(-h // s), -(-w // s)
        sc = np.zeros((gh * gw, classes), np.float32)
        reg = np.zeros((gh * gw, 4, reg_max + 1), np.float32)
        if s in objects:
            row, col, c, dist = objects[s]
            cell = row * gw + col
            sc[cell, c] = 0.9 if s == 8 else 0.8
            for side, bins in enumerate(dist):
                reg[cell, side, bins] = 30.0  # a sharp distribution: the expectation is the bin
            cx, cy = (col + 0.5) * s, (row + 0.5) * s
            l_, t, r, b = (d * s for d in dist)
            truth.append(([cx - l_, cy - t, cx + r, cy + b], c))
        scores.append(sc[None])
        regs.append(reg.reshape(1, gh * gw, -1))
    names = [f"transpose_{i}.tmp_0" for i in (0, 2, 4, 6, 1, 3, 5, 7)]
    return dict(zip(names, scores + regs, strict=True)), truth


def test_picodet_decodes_dfl_boxes_from_every_level():
    outputs, truth = _picodet_outputs(64, 48)
    d = decode("picodet", outputs, "transpose_0.tmp_0", 0.5, 0.5, 300, input_hw=(64, 48))
    assert d.classes.tolist() == [t[1] for t in truth]
    np.testing.assert_allclose(d.boxes, [t[0] for t in truth], atol=1e-3)
    assert d.scores.tolist() == pytest.approx([0.9, 0.8])


def test_picodet_needs_an_input_size_that_fits_its_grids():
    outputs, _ = _picodet_outputs(64, 48)
    with pytest.raises(BadInput, match="fit no stride"):
        decode("picodet", outputs, "transpose_0.tmp_0", 0.5, 0.5, 300, input_hw=(64, 64))
    with pytest.raises(BadInput, match="height and width"):
        decode("picodet", outputs, "transpose_0.tmp_0", 0.5, 0.5, 300)


def test_rows_layout_is_taken_as_it_is():
    rows = np.array([[[0, 0, 10, 10, 0.9, 3], [1, 1, 10, 10, 0.8, 3], [0, 0, 0, 0, 0.0, 0]]], np.float32)
    d = decode("xyxy,score,class", {"dets": rows}, "dets", 0.25, 0.5, 300)
    assert len(d) == 2 and d.classes.tolist() == [3, 3]  # no second suppression of a graph's own NMS


@pytest.mark.parametrize(
    ("layout", "shape", "message"),
    [
        ("yolov8", (1, 4, 100), "does not fit yolov8"),
        ("yolov5", (1, 100, 5), "does not fit yolov5"),
        ("yolov8", (1, 2, 7, 100), "2-D tensor per sample"),
        ("ssd", (1, 7, 100), "unknown decoder"),
        ("xyxy,score,class", (1, 100, 5), "layout needs 6"),
    ],
)
def test_a_tensor_that_does_not_fit_the_decoder_is_bad_input(layout, shape, message):
    with pytest.raises(BadInput, match=message):
        decode(layout, {"o": np.zeros(shape, np.float32)}, "o", 0.1, 0.5, 300)


def test_unknown_output_is_bad_input():
    with pytest.raises(BadInput, match="no such output"):
        decode("yolov8", {"o": YOLO_ROWS[None]}, "boxes", 0.1, 0.5, 300)


def test_nms_is_class_wise_greedy_and_capped():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.5, 0.9, 0.4, 0.3], np.float32)
    classes = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, classes, 0.5).tolist() == [1, 2, 3]  # box 0 (IoU 0.82 with 1) dropped
    assert nms(boxes, scores, classes, 0.9).tolist() == [1, 0, 2, 3]  # under the threshold: kept
    assert nms(boxes, scores, classes, 0.5, max_det=2).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0)).tolist() == []


def test_detections_rows_round_trip():
    d = Detections([[1, 2, 3, 4]], [0.5], [7])
    back = Detections.from_rows(d.rows())
    assert back.boxes.tolist() == [[1, 2, 3, 4]] and back.classes.tolist() == [7]
    assert back.scores.dtype == np.float32


def test_boxes_file_round_trips_per_output_and_sample(tmp_path):
    dets = {"out": [Detections([[1, 2, 3, 4], [5, 6, 7, 8]], [0.9, 0.5], [1, 2]), Detections.empty()]}
    boxfile.save(tmp_path / "boxes.npz", dets, (64, 48))
    back, hw = boxfile.load(tmp_path / "boxes.npz")
    assert hw == (64, 48) and [len(d) for d in back["out"]] == [2, 0]
    assert back["out"][0].boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]] and back["out"][
        0
    ].classes.tolist() == [1, 2]


def test_input_size_of_nchw_and_nhwc_images():
    assert input_hw_of([1, 3, 800, 608]) == (800, 608) and input_hw_of([3, 48, 192]) == (48, 192)
    assert input_hw_of([1, 320, 256, 3]) == (320, 256) and input_hw_of([1, 10]) is None
