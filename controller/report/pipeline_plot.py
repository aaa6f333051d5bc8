"""The pipeline's stacked per-stage timeline (issue 24), from the result's
``pipeline.timeline`` alone (so a result from the DB draws it): each stage's
mean time per frame stacked over the run, the frame budget dashed, so the
stage that eats the budget, and when, is one picture. matplotlib on first use."""

from __future__ import annotations

import io
from typing import Any


def stages_png(pipeline: dict[str, Any]) -> bytes | None:
    tl = pipeline.get("timeline") or {}
    if not tl.get("t_s"):
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    names = list(tl["stages"])
    ax.stackplot(tl["t_s"], *[tl["stages"][n] for n in names], labels=names, step="mid", alpha=0.85)
    if pipeline.get("frame_budget_ms"):
        ax.axhline(
            pipeline["frame_budget_ms"], color="black", linestyle="--", linewidth=1, label="frame budget"
        )
    ax.set_xlabel("time from the measured phase's start (s)")
    ax.set_ylabel("ms per frame")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, ncol=min(len(names) + 1, 5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
