"""The coverage report as terminal lines (edgebench coverage and the demo)."""

from __future__ import annotations

from typing import Any

from controller.quantize.coverage import line


def _input_line(r: dict[str, Any]) -> str:
    if not r["known"]:
        return f"  input {r['name']}: statistics not known (no calibration profile; --calibration gives them)"
    std = f"std x{min(r['std_ratio']):.2f}..{max(r['std_ratio']):.2f}"
    return (f"  input {r['name']}: mean over channels {r['channel_mean_shift_sd']:+.2f} sd, worst channel "
            f"{r['worst_channel_shift_sd']:+.2f} sd, {std}, "
            f"{r['outside_p01_p99_share']:.1%} of values outside the calibration's p01..p99 "
            "(about 2% for data like it; not clipping)")  # fmt: skip


def render(rep: dict[str, Any]) -> list[str]:
    """The headline, calibration, inputs, the layers that clip most, notes and gates."""
    out = [line(rep)]
    c = rep["calibration"]
    out.append(f"  calibration: {c['samples']} sample(s), from {c['source']}" if c["source"]
          else "  calibration: not known (ranges read from the model)")  # fmt: skip
    for r in rep["inputs"]:
        out.append(_input_line(r))
    for a in [a for a in rep["activations"] if a["kind"] == "input"]:
        out.append(
            f"  input {a['tensor']}: clips {a['clipped']} of {a['values']} values ({a['clip_share']:.2%})"
        )
    for a in [a for a in rep["activations"] if a["kind"] == "layer"][:5]:
        if a["clipped"]:
            chance = f", {a['chance_share']:.1%} by chance" if a["chance_share"] else ""
            if a.get("baseline_share"):
                chance += f", {a['baseline_share']:.2%} on the calibration set"
            out.append(f"  layer {a['tensor']}: clips {a['clipped']} of {a['values']} values "
                  f"({a['clip_share']:.2%}{chance}), {a['effective_bits']} effective bits")  # fmt: skip
    for note in rep["notes"]:
        out.append(f"  note: {note}")
    for g in rep["gates"]:
        out.append(f"gate {g['name']}: {'PASS' if g['passed'] else 'FAIL'} - {g['message']}")
    return out
