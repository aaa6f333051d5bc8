"""db_post: boxes from a DB text detector's probability map (PP-OCR det).

As PaddleOCR's DBPostProcess (rapidocr_onnxruntime ch_ppocr_det/utils.py):
threshold the map, dilate by 2x2, take each connected region, score it by the
mean probability inside its box, drop those under ``box_thresh``, then grow
each box by ``area x unclip_ratio / perimeter``. Here the boxes are upright
rectangles (numpy only: no OpenCV minAreaRect, no pyclipper on a board), which
is what a document camera's horizontal lines give; rotated text would need
the rotated rectangle. Boxes come out in frame pixels, in reading order."""

from __future__ import annotations

import numpy as np

from agent.errors import BadInput
from agent.pipeline.stages.base import Item, Stage


def components(mask: np.ndarray) -> np.ndarray:
    """Bounding boxes (y0, x0, y1, x1; exclusive ends) of the 8-connected
    regions of a boolean map, from its row runs joined by union-find."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    sr, sc = np.nonzero(d == 1)  # run starts, row-major
    _, ec = np.nonzero(d == -1)  # run ends (exclusive), same order
    n = len(sr)
    if not n:
        return np.empty((0, 4), np.int64)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    row_start = np.searchsorted(sr, np.arange(h + 1))
    srl, scl, ecl = sr.tolist(), sc.tolist(), ec.tolist()
    for y in range(1, h):
        a, a_end = int(row_start[y - 1]), int(row_start[y])
        b, b_end = int(row_start[y]), int(row_start[y + 1])
        while a < a_end and b < b_end:
            # 8-connected: runs touch when they overlap or meet at a corner
            if scl[a] <= ecl[b] and scl[b] <= ecl[a]:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
            if ecl[a] < ecl[b]:
                a += 1
            else:
                b += 1
    roots = np.array([find(i) for i in range(n)])
    uniq, lab = np.unique(roots, return_inverse=True)
    k = len(uniq)
    y0 = np.full(k, h, np.int64)
    x0 = np.full(k, w, np.int64)
    y1 = np.zeros(k, np.int64)
    x1 = np.zeros(k, np.int64)
    np.minimum.at(y0, lab, np.asarray(srl))
    np.maximum.at(y1, lab, np.asarray(srl) + 1)
    np.minimum.at(x0, lab, sc)
    np.maximum.at(x1, lab, ec)
    del d, ecl
    return np.stack([y0, x0, y1, x1], axis=1)


class DbPost(Stage):
    kind = "db_post"

    def __call__(self, item: Item) -> Item:
        outs = item.value
        prob = np.asarray(outs[0]) if len(outs) else None
        if prob is None or prob.ndim != 4 or prob.shape[1] != 1:
            shape = "x".join(map(str, prob.shape)) if prob is not None else "nothing"
            raise BadInput(f"{self.where}: expects a 1-channel probability map Nx1xHxW, gets {shape}")
        o = self.opts
        pm = prob[0, 0]
        mask = pm > o["thresh"]
        if o["dilate"]:
            m = mask.copy()
            m[1:, :] |= mask[:-1, :]
            m[:, 1:] |= mask[:, :-1]
            m[1:, 1:] |= mask[:-1, :-1]
            mask = m
        cc = components(mask)[: o["max_candidates"]]
        # mean probability inside each box from the summed-area table
        sat = np.zeros((pm.shape[0] + 1, pm.shape[1] + 1), np.float64)
        sat[1:, 1:] = pm.cumsum(0).cumsum(1)
        y0, x0, y1, x1 = cc.T if len(cc) else (np.empty(0, np.int64),) * 4
        area = (y1 - y0) * (x1 - x0)
        total = sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]
        score = total / np.maximum(area, 1)
        hh, ww = (y1 - y0).astype(np.float64), (x1 - x0).astype(np.float64)
        keep = (np.minimum(hh, ww) >= o["min_size"]) & (score >= o["box_thresh"])
        grow = hh * ww * o["unclip_ratio"] / np.maximum(2 * (hh + ww), 1)
        boxes = np.stack([x0 - grow, y0 - grow, x1 + grow, y1 + grow], axis=1)[keep]
        score = score[keep]
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        ok = side >= o["min_size"] + 2
        boxes, score = boxes[ok], score[ok]
        # map pixels (the model's input) -> frame pixels
        sy, sx = item.scale
        oy, ox = item.offset
        fh, fw = item.frame.shape[:2]
        boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - ox) / sx, 0, fw)
        boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - oy) / sy, 0, fh)
        order = np.lexsort((boxes[:, 0], np.round(boxes[:, 1] / 8)))  # reading order: rows, then x
        item.boxes, item.scores = boxes[order], score[order]
        item.value = item.boxes
        self.items = len(boxes)
        return item
