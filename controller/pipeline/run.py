"""A pipeline run from the host: push each file the stages name (once), the
frames, build the run spec, start it, watch it, and return the result.

Until the controller's session layer lands this uses the shared command
pieces (controller/commands/common.py); it is the one place to switch."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from agent.spec import RunSpec, SoakSpec
from controller.pipeline.load import Loaded

SOAK_FROM_S = 300.0  # a pipeline this long is a soak of the application: windows, throttle attribution


def build_spec(args: argparse.Namespace, loaded: Loaded, shas: dict[Path, str], inputs_sha: str) -> RunSpec:
    """The run spec: the run options (load pattern, meter, telemetry...) as for a
    bench, kind pipeline, the stages with their artifacts' sha256."""
    from controller.runopts import spec_from_args

    wire = loaded.with_shas(shas)
    first = next(
        (s for p in wire["pipelines"] for s in p["stages"] if s["stage"] == "model"),
        None,
    )
    if first is None:
        raise BadInput("a pipeline needs at least one model stage")
    base = spec_from_args(args, "bench", first["model_sha256"], first["model_name"], inputs_sha=inputs_sha)
    d = base.to_dict()
    d.update(kind="pipeline", pipeline=wire, placement=not getattr(args, "no_placement", False))
    window = getattr(args, "window", None)
    if window is not None or base.duration_s >= SOAK_FROM_S:
        d["soak"] = {**(d.get("soak") or {}), "window_s": float(window or SoakSpec().window_s)}
    return RunSpec.from_dict(d)


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[Any]:
    """--agent, else an embedded agent; ``--allow-code`` starts the embedded
    one with user stages allowed (a remote agent decides for itself)."""
    from controller.commands.common import connect as common_connect

    if getattr(args, "agent", None):
        if getattr(args, "allow_code", False):
            raise BadInput(
                "--allow-code applies to the embedded agent; start a remote one with "
                "edgebench-agent serve --allow-code"
            )
        with common_connect(args) as client:
            yield client
        return
    from controller.client import AgentClient
    from controller.embedded import EmbeddedAgent

    with (
        EmbeddedAgent(allow_code=bool(getattr(args, "allow_code", False))) as emb,
        AgentClient(emb.address) as client,
    ):
        client.embedded = True
        yield client


def execute(args: argparse.Namespace, loaded: Loaded) -> tuple[dict, str]:
    """Push, start, watch; (result, agent name). A bad-input failure raises (nothing stored)."""
    from controller.commands import common

    if not getattr(args, "inputs", None):
        raise BadInput("a pipeline needs frames: --inputs FRAMES.npz (uint8 NxHxWx3)")
    if not Path(args.inputs).is_file():
        raise BadInput(f"inputs file not found: {args.inputs}")
    with connect(args) as client:
        shas: dict[Path, str] = {}
        for _i, _j, _key, path in loaded.files:
            if path not in shas:
                shas[path] = client.push(path)
        spec = build_spec(args, loaded, shas, client.push(args.inputs))
        run_id = client.start_run(spec)
        quiet = getattr(args, "quiet", False)
        if not quiet:
            print(f"run {run_id} on {client.addr}", file=sys.stderr)
        try:
            result = common.wait_result(client, run_id, quiet, spec.warmup_s + spec.duration_s)
        except KeyboardInterrupt:
            common.interrupted(client, run_id, args)
            raise
        agent = common.agent_name(client)
        common.raise_bad_input(result)
    return result, agent
