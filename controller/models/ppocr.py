"""The PP-OCR models that ship inside the ``rapidocr-onnxruntime`` wheel: real
pretrained networks (a DB text detector, a text-direction classifier, a CRNN
recogniser) for tests and the demo. Only the model files are used; the
package itself (which imports OpenCV) is never imported, so it is installed
with ``--no-deps`` (Makefile)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from agent.errors import BadInput

DETECTOR = "ch_PP-OCRv4_det_infer.onnx"  # x: Nx3xHxW -> sigmoid_0.tmp_0: Nx1xHxW text probability map
CLASSIFIER = "ch_ppocr_mobile_v2.0_cls_infer.onnx"  # x: Nx3x48x192 -> Nx2 (0 / 180 degrees), opset 11
RECOGNIZER = "ch_PP-OCRv4_rec_infer.onnx"  # x: Nx3x48xW -> NxTx6625 character scores


def models_dir() -> Path | None:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "models"
    return d if d.is_dir() else None


def model_path(name: str) -> Path:
    d = models_dir()
    if d is None or not (d / name).is_file():
        raise BadInput(
            f"{name} needs the rapidocr-onnxruntime wheel: pip install --no-deps rapidocr-onnxruntime"
        )
    return d / name
