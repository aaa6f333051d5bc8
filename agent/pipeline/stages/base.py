"""What flows between stages (``Item``) and the stage protocol. A stage is
called once per frame with the frame's item and returns the next one; it also
says how many things it handled (boxes found, crops run: items per frame)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.errors import BadInput

# stage kind -> "module:class"
STAGES = {
    "letterbox": "agent.pipeline.stages.geometry:Letterbox",
    "resize": "agent.pipeline.stages.geometry:Resize",
    "normalize": "agent.pipeline.stages.normalize:Normalize",
    "model": "agent.pipeline.stages.model:ModelStage",
    "db_post": "agent.pipeline.stages.db_post:DbPost",
    "topk": "agent.pipeline.stages.classify:TopK",
    "ctc": "agent.pipeline.stages.ctc:CtcDecode",
    "crop": "agent.pipeline.stages.crop:Crop",
    "code": "agent.pipeline.stages.code:CodeStage",
    "yolo": "agent.pipeline.stages.yolo:YoloDecode",
}


@dataclass
class Item:
    """A frame on its way through the stages."""

    value: Any  # the current data: image(s), tensor, model outputs, boxes, labels, texts
    frame: np.ndarray  # the frame as it arrived (uint8 HxWx3): crops cut from it
    # current image pixels -> frame pixels: frame = (current - offset) / scale, per axis (y, x)
    scale: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)
    boxes: np.ndarray | None = None  # Kx4 xyxy in frame pixels, from the last boxes stage
    scores: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Stage:
    """A built-in or user stage. ``where`` names it in messages."""

    kind = ""
    backend = "numpy"

    def __init__(self, opts: dict[str, Any], ctx: dict[str, Any]) -> None:
        self.opts = opts
        self.name = opts["name"]
        self.where = f"pipeline {ctx['pipeline']} stage {ctx['index'] + 1} ({self.name})"
        self.items = 0  # items the last call handled

    def __call__(self, item: Item) -> Item:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def close(self) -> None:
        pass


def build(opts: dict[str, Any], ctx: dict[str, Any]) -> Stage:
    module, _, cls = STAGES[opts["stage"]].partition(":")
    return getattr(importlib.import_module(module), cls)(opts, ctx)


def need_images(stage: Stage, value: Any) -> np.ndarray:
    """The images a geometric stage takes: uint8 HxWx3 or NxHxWx3."""
    if not isinstance(value, np.ndarray) or value.ndim not in (3, 4) or value.shape[-1] != 3:
        shape = getattr(value, "shape", None)
        raise BadInput(f"{stage.where}: expects images HxWx3 (or NxHxWx3), gets {_shape(shape)}")
    return value


def _shape(shape: Any) -> str:
    return "x".join(str(d) for d in shape) if shape is not None else "no array"
