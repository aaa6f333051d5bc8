"""The optimize report's pictures: both variants' latency distributions overlaid
(histograms of ``series.latency_ms`` quantiles, as latency_plot.py reads them),
as PNG bytes for a data URI. matplotlib is imported on first use."""

from __future__ import annotations

import io

import numpy as np


def latency_overlay_png(quantiles: dict[str, list[float]]) -> bytes | None:
    """``{variant: quantiles}`` -> one PNG of their histograms on shared bins; None without data."""
    data = {k: np.asarray(v, float) for k, v in quantiles.items() if v and len(v) >= 2}
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    lo = min(float(v.min()) for v in data.values())
    hi = max(float(v.max()) for v in data.values())
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 60)
    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    for name, v in data.items():
        # evenly spaced quantiles: each holds the same share of iterations
        ax.hist(v, bins=bins, alpha=0.55, label=name, density=True)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def boxes_side_by_side_png(image: np.ndarray, reference: object, device: object, score: float) -> bytes:
    """One input (C x H x W or H x W x C, any float range) drawn twice: the reference's
    boxes on the left, the device's on the right (Detections above ``score``)."""
    from PIL import Image, ImageDraw

    x = np.asarray(image, np.float32)
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(1, 2, 0)
    if x.ndim == 2:
        x = x[..., None]
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-6) * 255  # normalised inputs too
    pic = Image.fromarray(np.repeat(x, 3 // x.shape[-1], axis=-1).astype(np.uint8), "RGB")
    h, w = pic.height, pic.width
    canvas = Image.new("RGB", (2 * w + 8, h), (255, 255, 255))
    for i, (dets, color) in enumerate(((reference, (0, 120, 0)), (device, (200, 0, 0)))):
        panel = pic.copy()
        draw = ImageDraw.Draw(panel)
        for box, s in zip(dets.boxes, dets.scores, strict=False):
            if s >= score:
                draw.rectangle([float(v) for v in box], outline=color, width=max(1, w // 300))
        canvas.paste(panel, (i * (w + 8), 0))
    scale = min(1.0, 900 / canvas.width)  # a page stays readable, the report small
    canvas = canvas.resize((max(1, int(canvas.width * scale)), max(1, int(h * scale))))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
