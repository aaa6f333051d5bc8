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
    return render_with_text(seed, height, width)[0]


def render_with_text(seed: int, height: int = 320, width: int = 320) -> tuple[np.ndarray, list[str]]:
    """One page and its lines' strings, top to bottom: the truth an OCR pipeline is checked against."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    paper = tuple(int(v) for v in rng.integers(185, 256, 3))
    img = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(img)
    y = int(rng.integers(4, 16))
    lines = []
    while y < height - 36:
        size = int(rng.integers(18, 34))
        ink = tuple(int(v) for v in rng.integers(0, 90, 3))
        x = int(rng.integers(4, max(5, width // 5)))
        word = str(rng.choice(WORDS))
        draw.text((x, y), word, fill=ink, font=ImageFont.load_default(size))
        lines.append(word)
        y += size + int(rng.integers(8, 28))
    return np.asarray(img, dtype=np.uint8), lines


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
