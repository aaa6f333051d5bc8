"""Detection accuracy on the controller: COCO mAP@[.5:.95], AP50 and per-class
AP computed by pycocotools (the [controller] extra), never by hand.

Two modes, one computation:

- ground truth: ``--labels GT.json`` in COCO detection format. The images
  sorted by id are the samples in order (image ``k`` is sample ``k``); boxes
  (``bbox`` = x, y, width, height) are in model-input pixels, so a letterboxed
  image's boxes are the original ones scaled and shifted by the letterbox
  (``controller/data/doc_pages.py`` writes them so);
- agreement: the reference model's own detections (above a score) stand in
  for the ground truth of the device's detections.

Every image keeps up to ``max_det`` detections (pycocotools' ``maxDets``), area
range "all". A class with no ground-truth box has no AP and is left out of
the means, as pycocotools leaves it out.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.validate.decode import Detections
from controller.extras import need


def load_labels(path: Path, samples: int, input_hw: tuple[int, int] | None = None) -> dict:
    """A COCO detection JSON checked against the run: one image per sample, every
    box a finite, non-empty box inside the model input (when its size is known).
    Anything else is BadInput naming the file and the first fault."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"--labels {path}: not a readable JSON file ({type(exc).__name__})") from None
    return check_labels(doc, samples, input_hw, str(path))


def check_labels(doc: Any, samples: int, input_hw: tuple[int, int] | None, where: str) -> dict:
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise BadInput(f"--labels {where}: expected COCO detection JSON with images, annotations, categories")
    anns, cats = doc.get("annotations"), doc.get("categories")
    if not isinstance(anns, list) or not isinstance(cats, list) or not cats:
        raise BadInput(f"--labels {where}: COCO detection JSON needs annotations[] and categories[]")
    try:
        ids = sorted(int(im["id"]) for im in doc["images"])
        cat_ids = {int(c["id"]) for c in cats}
    except (KeyError, TypeError, ValueError):
        raise BadInput(f"--labels {where}: every image and category needs an integer id") from None
    if len(ids) != samples or len(set(ids)) != len(ids):
        raise BadInput(f"--labels {where}: {len(ids)} images for {samples} samples (image k is sample k)")
    known = set(ids)
    for i, a in enumerate(anns):
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
            image, cat = int(a["image_id"]), int(a["category_id"])
        except (KeyError, TypeError, ValueError):
            raise BadInput(f"--labels {where}: annotation {i} needs image_id, category_id, bbox") from None
        if image not in known or cat not in cat_ids:
            raise BadInput(f"--labels {where}: annotation {i} names an unknown image or category")
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise BadInput(f"--labels {where}: annotation {i} has an empty or non-finite box")
        if input_hw is not None:
            ih, iw = input_hw
            tol = 0.5  # half a pixel of rounding
            if x < -tol or y < -tol or x + w > iw + tol or y + h > ih + tol:
                raise BadInput(
                    f"--labels {where}: annotation {i} box {[x, y, w, h]} lies outside the "
                    f"{iw}x{ih} model input (boxes are in model-input pixels)"
                )
    return doc


def truth_from_detections(dets: Sequence[Detections], classes: Sequence[int] | None = None) -> dict:
    """COCO ground truth made of detections (agreement mode: the reference's)."""
    cats = sorted({int(c) for d in dets for c in d.classes} | set(classes or []))
    images = [{"id": k, "width": 0, "height": 0} for k in range(len(dets))]
    anns = []
    for k, d in enumerate(dets):
        for b, c in zip(d.boxes.tolist(), d.classes.tolist(), strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            if w > 0 and h > 0:
                anns.append({"id": len(anns) + 1, "image_id": k, "category_id": int(c),
                             "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
    return {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in cats]}


def evaluate(dets: Sequence[Detections], truth: dict, max_det: int = 300) -> dict:
    """``{map, map50, per_class{category id: {ap, ap50, name}}, images, detections, truths}``
    of the detections (``dets[k]`` for sample ``k``) against COCO ground truth;
    ``map``/``map50`` are None when the truth has no box at all."""
    need("pycocotools", "mAP (--labels / detection accuracy)")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = sorted(int(im["id"]) for im in truth["images"])
    if len(images) != len(dets):
        raise BadInput(f"--labels: {len(images)} images for {len(dets)} samples (image k is sample k)")
    gt_doc = {
        "images": [{"id": i} for i in images],
        "categories": truth["categories"],
        "annotations": [
            {
                **a,
                "id": n + 1,
                "area": a.get("area") or float(a["bbox"][2]) * float(a["bbox"][3]),
                "iscrowd": int(a.get("iscrowd", 0)),
            }  # fmt: skip
            for n, a in enumerate(truth["annotations"])
        ],
    }
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in truth["categories"]}
    results = _results(dets, images)
    out: dict[str, Any] = {
        "images": len(images),
        "detections": len(results),
        "truths": len(gt_doc["annotations"]),
        "max_det": max_det,
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = gt_doc
        gt.createIndex()
        if results:
            ev = COCOeval(gt, gt.loadRes(np.asarray(results, dtype=np.float64)), "bbox")
            ev.params.maxDets = [1, 10, max_det]
            ev.evaluate()
            ev.accumulate()
            precision = ev.eval["precision"]  # [IoU T, recall R, class K, area A, maxDets M]
            cat_ids = list(ev.params.catIds)
            iou50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
    if not results:  # nothing detected: every class with a truth box scores 0
        with_truth = sorted({int(a["category_id"]) for a in gt_doc["annotations"]})
        ap = 0.0 if with_truth else None
        per = {str(c): {"name": names.get(c, str(c)), "ap": 0.0, "ap50": 0.0} for c in with_truth}
        return {**out, "map": ap, "map50": ap, "per_class": per}
    p = precision[:, :, :, 0, -1]
    per = {}
    for k, c in enumerate(cat_ids):
        ap, ap50 = _mean(p[:, :, k]), _mean(p[iou50, :, k])
        if ap is not None:
            per[str(c)] = {"name": names.get(int(c), str(c)), "ap": ap, "ap50": ap50}
    return {**out, "map": _mean(p), "map50": _mean(p[iou50]), "per_class": per}


def per_sample_ap50(dets: Sequence[Detections], truth: dict, max_det: int = 300) -> list[float | None]:
    """AP50 of each sample alone (the worst sample a failed gate names)."""
    images = sorted(int(im["id"]) for im in truth["images"])
    out = []
    for k, image in enumerate(images):
        one = {
            "images": [{"id": image}],
            "categories": truth["categories"],
            "annotations": [a for a in truth["annotations"] if int(a["image_id"]) == image],
        }
        out.append(evaluate([dets[k]], one, max_det)["map50"])
    return out


def agreement(device: Sequence[Detections], reference: Sequence[Detections], score: float,
              max_det: int = 300) -> dict:  # fmt: skip
    """mAP of the device's detections against the reference's above ``score``."""
    truth = truth_from_detections([d.above(score) for d in reference])
    return evaluate(device, truth, max_det)


def _results(dets: Sequence[Detections], images: list[int]) -> list[list[float]]:
    """pycocotools' result rows: image id, x, y, w, h, score, class."""
    rows = []
    for image, d in zip(images, dets, strict=True):
        b = d.boxes.astype(np.float64)
        for (x1, y1, x2, y2), s, c in zip(b.tolist(), d.scores.tolist(), d.classes.tolist(), strict=True):
            rows.append([image, x1, y1, x2 - x1, y2 - y1, s, c])
    return rows


def _mean(p: np.ndarray) -> float | None:
    valid = p[p > -1]
    return float(np.mean(valid)) if valid.size else None
