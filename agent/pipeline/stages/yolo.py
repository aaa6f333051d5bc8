"""yolo: a detector's outputs decoded to boxes and suppressed, by the
decoders and class-wise NMS that validate uses on the board
(agent/validate/decode.py, nms.py: yolov8, yolov5, picodet), then mapped from
model-input pixels back to frame pixels through the letterbox or resize."""

from __future__ import annotations

import numpy as np

from agent.errors import BadInput
from agent.pipeline.stages.base import Item, Stage
from agent.validate.decode import decode


class YoloDecode(Stage):
    kind = "yolo"

    def __call__(self, item: Item) -> Item:
        outs = item.value
        o = self.opts
        if not len(outs) or o["output"] >= len(outs):
            raise BadInput(f"{self.where}: output {o['output']} asked for, the model gives {len(outs)}")
        named = {f"output{i}": np.asarray(x) for i, x in enumerate(outs)}
        hw = item.extra.get("input_hw")
        det = decode(o["layout"], named, f"output{o['output']}", o["score"], o["iou"], o["max_boxes"], hw)
        boxes = det.boxes.astype(np.float64)
        sy, sx = item.scale
        oy, ox = item.offset
        fh, fw = item.frame.shape[:2]
        boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - ox) / sx, 0, fw)
        boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - oy) / sy, 0, fh)
        item.boxes, item.scores = boxes, det.scores
        item.extra["classes"] = det.classes
        item.value = np.concatenate([boxes, det.scores[:, None], det.classes[:, None]], axis=1)
        self.items = len(boxes)
        return item
