"""resize and letterbox: bilinear sampling with half-pixel centres, in numpy
(the convention of OpenCV's INTER_LINEAR and PIL's BILINEAR without
antialiasing), or OpenCV's own ``cv2.resize`` where the board has it
(``backend: auto`` picks it then; the stage's backend is recorded). Both
record how the new pixels map back to the frame's, so boxes found later land
in frame pixels."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.pipeline.stages.base import Item, Stage, need_images


def bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """uint8 (N)xHxWxC -> (N)x out_h x out_w xC."""
    h, w = img.shape[-3], img.shape[-2]
    if (h, w) == (out_h, out_w):
        return img
    ys = (np.arange(out_h, dtype=np.float32) + 0.5) * (h / out_h) - 0.5
    xs = (np.arange(out_w, dtype=np.float32) + 0.5) * (w / out_w) - 0.5
    ys, xs = np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)
    y0, x0 = ys.astype(np.int32), xs.astype(np.int32)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    f = img.astype(np.float32)
    top = f[..., y0, :, :]
    bot = f[..., y1, :, :]
    rows = top + (bot - top) * wy  # (N)x out_h x W x C
    left = rows[..., x0, :]
    right = rows[..., x1, :]
    out = left + (right - left) * wx
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


Resizer = Callable[[np.ndarray, int, int], np.ndarray]


def resizer(backend: str, where: str) -> tuple[str, Resizer]:
    """(backend name, resize function) for a stage's ``backend`` option."""
    have_cv2 = importlib.util.find_spec("cv2") is not None
    if backend == "opencv" and not have_cv2:
        raise BadInput(
            f"{where}: backend opencv needs OpenCV (cv2), which this board lacks; use backend: numpy"
        )
    if backend == "numpy" or not have_cv2:
        return "numpy", bilinear
    cv2 = importlib.import_module("cv2")

    def cv_resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
        if img.shape[-3:-1] == (out_h, out_w):
            return img
        if img.ndim == 3:
            return cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        return np.stack([cv2.resize(i, (out_w, out_h), interpolation=cv2.INTER_LINEAR) for i in img])

    return "opencv", cv_resize


class Resize(Stage):
    kind = "resize"

    def __init__(self, opts: dict[str, Any], ctx: dict[str, Any]) -> None:
        super().__init__(opts, ctx)
        self.backend, self.resize = resizer(opts["backend"], self.where)

    def __call__(self, item: Item) -> Item:
        img = need_images(self, item.value)
        h, w = img.shape[-3], img.shape[-2]
        oh, ow = self.opts["size"]
        item.value = self.resize(img, oh, ow)
        sy, sx = item.scale
        item.scale = (sy * oh / h, sx * ow / w)
        item.offset = (item.offset[0] * oh / h, item.offset[1] * ow / w)
        self.items = 1 if img.ndim == 3 else img.shape[0]
        return item


class Letterbox(Stage):
    """Scale to fit, keep the aspect ratio, pad the rest (centred, as
    Ultralytics' LetterBox does by default)."""

    kind = "letterbox"

    def __init__(self, opts: dict[str, Any], ctx: dict[str, Any]) -> None:
        super().__init__(opts, ctx)
        self.backend, self.resize = resizer(opts["backend"], self.where)

    def __call__(self, item: Item) -> Item:
        img = need_images(self, item.value)
        h, w = img.shape[-3], img.shape[-2]
        oh, ow = self.opts["size"]
        r = min(oh / h, ow / w)
        nh, nw = max(1, int(round(h * r))), max(1, int(round(w * r)))
        top, left = (oh - nh) // 2, (ow - nw) // 2
        shape: Any = (*img.shape[:-3], oh, ow, img.shape[-1])
        out = np.full(shape, self.opts["pad"], dtype=np.uint8)
        out[..., top : top + nh, left : left + nw, :] = self.resize(img, nh, nw)
        item.value = out
        sy, sx = nh / h, nw / w
        item.scale = (item.scale[0] * sy, item.scale[1] * sx)
        item.offset = (item.offset[0] * sy + top, item.offset[1] * sx + left)
        self.items = 1 if img.ndim == 3 else img.shape[0]
        return item
