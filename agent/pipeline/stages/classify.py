"""topk: the k best classes of each item (a classifier's scores)."""

from __future__ import annotations

import numpy as np

from agent.errors import BadInput
from agent.pipeline.stages.base import Item, Stage


class TopK(Stage):
    kind = "topk"

    def __call__(self, item: Item) -> Item:
        outs = item.value
        if not len(outs):
            item.value, self.items = [], 0
            return item
        i = self.opts["output"]
        if i >= len(outs):
            raise BadInput(f"{self.where}: output {i} asked for, the model gives {len(outs)}")
        s = np.asarray(outs[i]).reshape(len(outs[i]), -1)
        k = min(self.opts["k"], s.shape[1])
        idx = np.argsort(-s, axis=1)[:, :k]
        item.value = [[(int(c), float(row[c])) for c in top] for row, top in zip(s, idx, strict=True)]
        self.items = len(item.value)
        return item
