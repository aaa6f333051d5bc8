"""A pipeline run from the host, through the session layer: push each file
the stages name (once per session) and the frames, build the spec
(controller/specs.py, kind ``pipeline``), run it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from agent.spec import RunSpec
from controller.pipeline.load import Loaded


def first_model(wire: dict[str, Any]) -> dict[str, Any]:
    for p in wire["pipelines"]:
        for s in p["stages"]:
            if s["stage"] == "model":
                return s
    raise BadInput("a pipeline needs at least one model stage")


def prepare(session: Any, args: argparse.Namespace, loaded: Loaded) -> RunSpec:
    """Push every file the stages name and the frames; the pipeline's RunSpec
    (the command and a fleet plan's pipeline job both start it)."""
    from controller import specs

    if not getattr(args, "inputs", None):
        raise BadInput("a pipeline needs frames: --inputs FRAMES.npz (uint8 NxHxWx3)")
    shas: dict[Path, str] = {path: session.push(path, "pipeline") for _i, _j, _k, path in loaded.files}
    inputs = session.push(args.inputs, "inputs")
    args.pipeline_wire = loaded.with_shas(shas)
    model = first_model(args.pipeline_wire)
    return specs.build("pipeline", args, model["model_sha256"], model["model_name"], inputs_sha=inputs)


def run(session: Any, args: argparse.Namespace, loaded: Loaded) -> dict:
    """Push, build, run (with the live per-stage bars unless --quiet): the
    result document (a bad-input failure raises, nothing stored)."""
    from controller.pipeline.live import StageBars

    quiet = bool(getattr(args, "quiet", False))
    bars = None if quiet else StageBars()
    return session.run(prepare(session, args, loaded), on_event=bars.event if bars else None, quiet=quiet)
