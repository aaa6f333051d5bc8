"""The sweep's one plot: throughput (samples/s) against p99 per call, the
Pareto front drawn through its points, the best point for the objective
named. matplotlib (the [controller] extra), imported when a plot is made."""

from __future__ import annotations

from pathlib import Path

from controller import extras


def write(doc: dict, dest: Path) -> Path:
    extras.need("matplotlib", "the sweep plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [p for p in doc["points"] if p.get("throughput_sps") is not None and p.get("p99_ms") is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ax.scatter([p["p99_ms"] for p in pts], [p["throughput_sps"] for p in pts], color="#888", label="points")
    front = sorted((p for p in pts if p.get("pareto")), key=lambda p: p["p99_ms"])
    if front:
        ax.plot([p["p99_ms"] for p in front], [p["throughput_sps"] for p in front], "o-", color="#c03",
                label="Pareto front")  # fmt: skip
    axes = list(doc["axes"])
    for p in pts:
        ax.annotate(",".join(str(p.get(a)) for a in axes), (p["p99_ms"], p["throughput_sps"]), fontsize=7,
                    textcoords="offset points", xytext=(4, 4))  # fmt: skip
    b = doc.get("best")
    if b and b.get("p99_ms") is not None:
        ax.scatter([b["p99_ms"]], [b["throughput_sps"]], s=160, facecolors="none", edgecolors="#06c",
                   linewidths=2, label=f"best ({b['objective']})")  # fmt: skip
    ax.set_xlabel("p99 latency per call (ms)")
    ax.set_ylabel("throughput (samples/s)")
    ax.set_title(f"sweep {doc['sweep_id']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)
    return dest
