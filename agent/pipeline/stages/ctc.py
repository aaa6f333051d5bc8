"""ctc: greedy CTC decoding of a recogniser's per-position scores (N x T x C):
the best class per position, repeats merged, blanks (class 0) dropped, then
mapped through the character list. The list comes from the model's metadata
(PP-OCR keeps it under ``character``) or a keys file (one character a line);
class 0 is the blank and, with ``space``, a space follows the last character:
the layout of PaddleOCR's CTCLabelDecode (rapidocr_onnxruntime
ch_ppocr_rec/utils.py, which this follows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.pipeline.stages.base import Item, Stage
from agent.store.paths import locate_artifact


class CtcDecode(Stage):
    kind = "ctc"

    def __init__(self, opts: dict[str, Any], ctx: dict[str, Any]) -> None:
        super().__init__(opts, ctx)
        chars = None
        if opts["characters_sha256"]:
            path = locate_artifact(Path(ctx["run_dir"]), opts["characters_sha256"], "characters")
            chars = path.read_text(encoding="utf-8").splitlines()
        else:
            model = ctx.get("last_model")
            chars = model.characters() if model is not None else None
            if chars is None:
                raise BadInput(
                    f"{self.where}: the model before it carries no character list; "
                    "give characters: a keys file"
                )
        self.table = np.array(["", *chars, *([" "] if opts["space"] else [])], dtype=object)

    def __call__(self, item: Item) -> Item:
        outs = item.value
        if not len(outs):
            item.value, self.items = [], 0
            return item
        p = np.asarray(outs[self.opts["output"]])
        if p.ndim != 3 or p.shape[2] != len(self.table):
            raise BadInput(
                f"{self.where}: expects N x T x {len(self.table)} scores (the character list + blank"
                f"{' + space' if self.opts['space'] else ''}), gets {'x'.join(map(str, p.shape))}"
            )
        best = p.argmax(axis=2)
        conf = p.max(axis=2)
        texts = []
        for row, c in zip(best, conf, strict=True):
            keep = np.ones(len(row), bool)
            keep[1:] = row[1:] != row[:-1]
            keep &= row != 0
            texts.append(("".join(self.table[row[keep]]), float(c[keep].mean()) if keep.any() else 0.0))
        item.value = texts
        self.items = len(texts)
        return item
