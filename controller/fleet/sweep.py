"""The ``sweep`` job kind of a fleet plan: one bench job per point of its axes.

    - name: cls-sweep
      kind: sweep
      models: [cls.onnx]
      boards: {all: true}
      options: {sweep: ["threads=1,2", "batch=1,4"], duration: 2s}

expands, when the plan is read, into the bench jobs ``cls-sweep.threads-1.batch-1``
and so on, each labelled ``sweep=<job name>`` and ``sweep_point=<point>``: a work
item per point and board, run, stored once and resumed like any other, in the
fleet matrix and reports; the points' options go through the bench parser
and every point's shapes are checked against the model (controller/sweep/),
so a bad sweep is refused with the plan's line before anything runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from controller.fleet import options
from controller.sweep import axes as sweep_axes


def _texts(value: Any) -> list[str]:
    """``sweep:`` as a list of ``AXIS=V1,V2`` or a mapping ``{axis: [v1, v2]}``."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, dict):
        return [
            f"{k}={','.join(str(x) for x in (v if isinstance(v, list) else [v]))}" for k, v in value.items()
        ]
    raise options.OptionError("sweep must be AXIS=V1,V2 strings or a mapping {axis: [values]}", "sweep")


def _point_options(opts: dict[str, Any], point: dict[str, Any], job: str, label: str) -> dict[str, Any]:
    out = {k: v for k, v in opts.items() if k != "sweep"}
    for axis, v in point.items():
        if axis == "input_shape":
            name, _, dims = str(v).partition("=")
            shapes = dict(out.get("input_shape") or {})
            shapes[name] = dims
            out["input_shape"] = shapes
        elif axis == "provider":
            out["provider"] = str(v).split("+")
        else:
            out[axis] = v
    labels = out.get("label") or {}
    labels = dict(labels) if isinstance(labels, dict) else dict(str(t).split("=", 1) for t in labels)
    out["label"] = {**labels, "sweep": job, "sweep_point": label}
    return out


def expand(job: str, opts: dict[str, Any], models: list[str], base: Path) -> list[tuple[str, dict[str, Any]]]:
    """[(bench job name, its options)] for every point; OptionError naming ``sweep`` or a point."""
    from agent.errors import BadInput
    from controller import specs
    from controller.sweep import preflight

    if "sweep" not in opts:
        raise options.OptionError("a sweep job needs options: {sweep: [AXIS=V1,V2, ...]}", "sweep")
    try:
        ax = sweep_axes.parse(_texts(opts["sweep"]))
    except BadInput as exc:
        raise options.OptionError(str(exc), "sweep") from None
    out = []
    for point in sweep_axes.points(ax):
        label = sweep_axes.label(point)
        popts = _point_options(opts, point, job, label)
        name = f"{job}." + ".".join(
            f"{k}-{re.sub(r'[^A-Za-z0-9._-]', '-', str(v))}" for k, v in point.items()
        )
        for m in models:
            args = options.parse("bench", popts, m, base)
            try:
                spec = specs.build("bench", args, "0" * 64, Path(m).name)
                preflight.check(Path(m), [(label, spec)])
            except BadInput as exc:
                raise options.OptionError(f"sweep point {label}: {exc}", "sweep") from None
        out.append((name, popts))
    return out
