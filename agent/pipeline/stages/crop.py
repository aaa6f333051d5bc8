"""crop: the boxes of the stage before become the next model's batch: each
box cut from the frame, resized to the crop height keeping its aspect ratio
(no wider than the crop width), padded on the right, as PP-OCR feeds its
recogniser (rec_img_shape 3x48x320)."""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.pipeline.stages.base import Item, Stage
from agent.pipeline.stages.geometry import resizer


class Crop(Stage):
    kind = "crop"

    def __init__(self, opts: dict[str, Any], ctx: dict[str, Any]) -> None:
        super().__init__(opts, ctx)
        self.backend, self.resize = resizer(opts["backend"], self.where)

    def __call__(self, item: Item) -> Item:
        oh, ow = self.opts["size"]
        boxes = item.boxes if item.boxes is not None else np.empty((0, 4))
        boxes = boxes[: self.opts["max_items"]]
        out = np.full((len(boxes), oh, ow, 3), self.opts["pad"], np.uint8)
        fh, fw = item.frame.shape[:2]
        m = self.opts["margin"]
        for k, (x0, y0, x1, y1) in enumerate(boxes):
            xa, ya = max(0, int(np.floor(x0)) - m), max(0, int(np.floor(y0)) - m)
            xb, yb = min(fw, int(np.ceil(x1)) + m), min(fh, int(np.ceil(y1)) + m)
            if xb <= xa or yb <= ya:
                continue
            piece = item.frame[ya:yb, xa:xb]
            if self.opts["keep_ratio"]:
                w = min(ow, max(1, int(np.ceil(oh * (xb - xa) / (yb - ya)))))
            else:
                w = ow
            out[k, :, :w] = self.resize(piece, oh, w)
        item.value = out
        item.scale, item.offset = (1.0, 1.0), (0.0, 0.0)
        self.items = len(boxes)
        return item
