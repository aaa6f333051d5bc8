"""Text images the project renders itself (Pillow): lines of words in varied
sizes, inks and paper tones, as a document camera sees them. Validation and
calibration data for the PP-OCR models; ``field_shift`` makes the darker,
low-contrast, noisier frames a field camera gives (coverage tests)."""

from __future__ import annotations

import numpy as np

WORDS = (
    "edgebench", "INVOICE 2026", "total 42.50", "Jetson Orin", "i.MX 8M Plus", "validate",
    "calibration", "AM62A", "serial 0x3F21", "batch 17", "ship to: lab 2", "thermal",
)  # fmt: skip
# ImageNet normalisation, as PP-OCR's detector is fed
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def render(seed: int, height: int = 320, width: int = 320) -> np.ndarray:
    """One page as uint8 HxWx3."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    paper = tuple(int(v) for v in rng.integers(185, 256, 3))
    img = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(img)
    y = int(rng.integers(4, 16))
    while y < height - 36:
        size = int(rng.integers(18, 34))
        ink = tuple(int(v) for v in rng.integers(0, 90, 3))
        x = int(rng.integers(4, max(5, width // 5)))
        draw.text((x, y), str(rng.choice(WORDS)), fill=ink, font=ImageFont.load_default(size))
        y += size + int(rng.integers(8, 28))
    return np.asarray(img, dtype=np.uint8)


def to_detector_input(pages: np.ndarray) -> np.ndarray:
    """uint8 NxHxWx3 -> float32 Nx3xHxW, normalised as PP-OCR's detector expects."""
    x = pages.astype(np.float32) / 255.0
    return ((x - MEAN) / STD).transpose(0, 3, 1, 2).copy()


def pages(n: int, seed: int = 0, height: int = 320, width: int = 320) -> np.ndarray:
    return np.stack([render(seed + i, height, width) for i in range(n)])


def field_shift(pages_u8: np.ndarray, seed: int = 0, gain: float = 0.45, noise: float = 18.0) -> np.ndarray:
    """Darker, lower-contrast, noisier frames: a dim enclosure camera."""
    rng = np.random.default_rng(seed)
    x = pages_u8.astype(np.float32) * gain + rng.normal(0.0, noise, pages_u8.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def orientation_lines(n: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """``(x float32 N x 3 x 48 x 192, labels)``: single text lines for PP-OCR's
    direction classifier, every other one rotated 180 degrees (label 1; its
    classes are "0" and "180"). Preprocessed as PaddleOCR's ``ClsPreProcess``:
    resized to height 48 keeping the aspect (width at most 192), scaled to
    [-1, 1], zero-padded on the right to 192."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    xs, labels = [], []
    for k in range(n):
        text = " ".join(str(w) for w in rng.choice(WORDS, int(rng.integers(2, 4))))
        font = ImageFont.load_default(int(rng.integers(26, 34)))
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font)
        pad = 6
        img = Image.new(
            "RGB", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), tuple(int(v) for v in rng.integers(200, 256, 3))
        )
        ImageDraw.Draw(img).text(
            (pad - x0, pad - y0), text, fill=tuple(int(v) for v in rng.integers(0, 70, 3)), font=font
        )
        label = k % 2
        if label:
            img = img.rotate(180)
        w = min(192, max(1, round(img.width * 48 / img.height)))
        a = (np.asarray(img.resize((w, 48), Image.BILINEAR), np.float32) / 255.0 - 0.5) / 0.5
        x = np.zeros((3, 48, 192), np.float32)
        x[:, :, :w] = a.transpose(2, 0, 1)
        xs.append(x)
        labels.append(label)
    return np.stack(xs), labels
