"""normalize: (pixels x scale - mean) / std, in the layout and dtype a model
takes; a single frame gets its batch axis of 1."""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.pipeline.stages.base import Item, Stage, need_images


class Normalize(Stage):
    kind = "normalize"

    def __init__(self, opts: dict[str, Any], ctx: dict[str, Any]) -> None:
        super().__init__(opts, ctx)
        self.mean = np.asarray(opts["mean"], np.float32).reshape(-1)
        self.std = np.asarray(opts["std"], np.float32).reshape(-1)
        self.dtype = np.dtype(opts["dtype"])
        # one multiply-add per pixel: (x * scale - mean) / std = x * a + b
        self.a = (np.float32(opts["scale"]) / self.std).astype(np.float32)
        self.b = (-self.mean / self.std).astype(np.float32)

    def __call__(self, item: Item) -> Item:
        img = need_images(self, item.value)
        batch = img if img.ndim == 4 else img[None]
        if self.dtype.kind in "iu" and self.dtype.itemsize == 1 and self.opts["scale"] == 1 / 255:
            x = batch  # a quantized model fed raw pixels: no float pass
            x = x.astype(self.dtype) if self.dtype != x.dtype else x
        else:
            x = batch.astype(np.float32) * self.a + self.b
            x = x.astype(self.dtype, copy=False)
        if self.opts["layout"] == "nchw":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        item.value = x
        self.items = batch.shape[0]
        return item
