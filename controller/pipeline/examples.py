"""Pipelines the project ships, with the data they run on: the two-model
PP-OCR pipeline (detector -> DB post-processing -> crop -> recogniser -> CTC)
on text pages the project renders, so the recognised text can be checked
against the strings drawn (tests, the demo)."""

from __future__ import annotations

from pathlib import Path

# PP-OCR's own pre-processing (rapidocr_onnxruntime config.yaml): the detector
# takes ImageNet-normalised pixels at a multiple of 32, the recogniser 3x48xW in [-1, 1]
OCR_YAML = """\
name: ocr
stages:
  - resize: {size: [%(h)d, %(w)d]}
  - normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
  - model: {name: det, path: "ppocr:detector"}
  - db_post: {thresh: 0.3, box_thresh: 0.5, unclip_ratio: 1.6}
  - crop: {size: [48, 320]}
  - normalize: {name: rec_norm, mean: 0.5, std: 0.5}
  - model: {name: rec, path: "ppocr:recognizer"}
  - ctc: {}
"""


def write_ocr(
    out: Path, pages: int = 4, height: int = 128, width: int = 320, seed: int = 0
) -> tuple[Path, Path, list[list[str]]]:
    """(PIPELINE.yaml, frames.npz, the strings each page holds, top to bottom)."""
    import numpy as np

    from controller.data.text_images import render_with_text

    out.mkdir(parents=True, exist_ok=True)
    imgs, truth = [], []
    for i in range(pages):
        img, lines = render_with_text(seed + i, height, width)
        imgs.append(img)
        truth.append(lines)
    frames = out / "ocr-frames.npz"
    np.savez(frames, frames=np.stack(imgs))
    yaml_path = out / "ocr.yaml"
    yaml_path.write_text(OCR_YAML % {"h": height, "w": width})
    return yaml_path, frames, truth
