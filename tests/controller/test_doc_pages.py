"""The rendered document pages: every block kind drawn, the truth where the
block is, and the letterbox mapping of docs/usage.md (x*s + dx, y*s + dy)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.data import doc_pages
from controller.models import layout


def test_blocks_are_where_they_were_drawn_and_letterbox_maps_them():
    page = doc_pages.render(0)
    kinds = {k for k, _ in page.blocks}
    assert {"title", "text", "header", "footer"} <= kinds and kinds <= set(doc_pages.KINDS)
    white = np.all(page.image == 255, axis=2)
    for _, (x1, y1, x2, y2) in page.blocks:  # ink inside every box
        assert not white[int(y1) : int(y2) + 1, int(x1) : int(x2) + 1].all()
    canvas, s, dx, dy = doc_pages.letterbox(page.image, (1024, 1024))
    h, w = page.image.shape[:2]
    assert s == pytest.approx(1024 / h) and dy == 0 and dx == (1024 - round(w * s)) // 2
    assert (canvas[:, : dx - 1] == doc_pages.PAD).all()  # the pad column left of the page
    pic = next((b for k, b in page.blocks if k == "picture"), None) or page.blocks[0][1]
    cx, cy = (pic[0] + pic[2]) / 2, (pic[1] + pic[3]) / 2
    got = canvas[round(cy * s + dy), round(cx * s + dx)].astype(int)
    want = page.image[round(cy), round(cx)].astype(int)
    assert np.abs(got - want).max() < 40  # the same colour at the mapped point (bilinear resize)


def test_dataset_truth_is_coco_in_model_input_pixels_per_model_class_list():
    x, truth = doc_pages.dataset(2, (800, 608), doc_pages.CDLA, layout.CDLA_CLASSES, normalize="imagenet")
    assert x.shape == (2, 3, 800, 608) and x.dtype == np.float32
    assert [im["id"] for im in truth["images"]] == [0, 1]
    assert {c["name"] for c in truth["categories"]} == set(layout.CDLA_CLASSES)
    for a in truth["annotations"]:
        bx, by, bw, bh = a["bbox"]
        assert 0 <= bx and 0 <= by and bx + bw <= 608 and by + bh <= 800 and bw > 0 and bh > 0
    assert {a["category_id"] for a in truth["annotations"]} <= set(doc_pages.CDLA.values())
