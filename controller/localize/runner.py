"""localize's device runs: every hybrid is a validate run of one model
through the session layer (pushed, run, stored), scored with the validate
task metric and gates on the controller as `edgebench validate` scores it.

The float end and every hybrid's float part run where the device model runs
(the agent, with the same runtime options); the reference they are compared
with is the float model's outputs on this host's CPU, as `edgebench
reference` makes it.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path
from typing import Any

from agent.errors import RunFailed
from controller import session as sessions
from controller.localize import graph
from controller.localize.search import Probe


class HybridScorer:
    """``score(cut)`` for search.bisect: builds, pushes and validates the
    hybrid at ``cut`` (None: the float model; len(cuts): the device model)."""

    def __init__(
        self,
        session: Any,
        args: argparse.Namespace,
        device: Any,
        float_model: Any,
        cuts: list[graph.Cut],
        plan: Any,
        workdir: Path,
    ) -> None:
        self.session, self.args, self.device, self.float_model = session, args, device, float_model
        self.cuts, self.plan, self.workdir = cuts, plan, workdir
        self.results: dict[int | None, dict] = {}
        self.on_probe = None  # callable(Probe, label) for progress lines

    def model_for(self, cut: int | None) -> Path:
        if cut is None:
            return Path(self.args.float)
        if cut >= len(self.cuts):
            return Path(self.args.model)
        return graph.save(
            graph.hybrid(self.device, self.float_model, self.cuts, cut), self.workdir / f"hybrid-{cut}.onnx"
        )

    def __call__(self, cut: int | None) -> Probe:
        path = self.model_for(cut)
        a = copy.copy(self.args)
        a.model = str(path)
        a.json = None
        a.inputs = None  # the reference carries the inputs
        label = "float" if cut is None else "device" if cut >= len(self.cuts) else self.cuts[cut].tensor
        result = sessions.run_model(self.session, "validate", a, quiet=True, labels={"localize": label[:200]})
        if result.get("status") != "completed":
            err = result.get("error")
            err = err.get("message", "") if isinstance(err, dict) else str(err or "")
            raise RunFailed(
                f"localize: the {label} run {result.get('run_id', '')} ended {result.get('status')}: {err}"
            )
        if self.plan is not None:
            from controller.accuracy import validation as accuracy

            accuracy.apply(self.plan, self.session, result)
        sessions.store(result, self.session.agent_name, getattr(self.args, "db", None))
        if path.parent == self.workdir:
            path.unlink(missing_ok=True)  # a hybrid is a YOLOv8's size: one on disk at a time
        self.results[cut] = result
        gates = result.get("gates") or []
        failed = [g for g in gates if not g.get("passed", True)]
        g = failed[0] if failed else (gates[0] if gates else {})
        probe = Probe(
            cut, not failed, g.get("value"), str(g.get("name") or ""), str(result.get("run_id") or "")
        )
        if self.on_probe is not None:
            self.on_probe(probe, label)
        return probe


def workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="edgebench-localize-")


def partition_of(result: dict | None, node: str) -> dict:
    """Where the device ran ``node``: its provider and partition (subgraph)
    from the device run's placement; {} when the run had none."""
    for r in ((result or {}).get("placement") or {}).get("nodes") or []:
        if r.get("name") == node:
            return {"provider": r.get("provider"), "device": r.get("device"), "subgraph": r.get("subgraph")}
    return {}


def tap_runs(
    session: Any,
    args: argparse.Namespace,
    device: Any,
    float_model: Any,
    batches: list[list[graph.Cut]],
    samples: tuple[Any, dict],
    workdir: Path,
    say: Any = None,
) -> dict[str, dict]:
    """Per tensor: the device's metrics against float (on the agent) and the
    host's simulated QDQ value's; one stored validate run per batch."""
    from controller.localize import taps

    figures: dict[str, dict] = {}
    for j, batch in enumerate(batches):
        dev = graph.save(
            taps.tap_model(device, [(c.device_tensor, taps.TAP + c.tensor) for c in batch]),
            workdir / f"taps-{j}.onnx",
        )
        flt = graph.save(
            taps.tap_model(float_model, [(c.tensor, taps.TAP + c.tensor) for c in batch]),
            workdir / f"taps-{j}-float.onnx",
        )
        host = taps.host_metrics(dev, flt, *samples)
        fsha = session.push(flt, "float model")
        a = taps.tap_args(args, dev, fsha)
        result = sessions.run_model(
            session, "validate", a, quiet=True, labels={"localize": f"taps {j + 1}/{len(batches)}"}
        )
        if result.get("status") != "completed":
            err = result.get("error")
            err = err.get("message", "") if isinstance(err, dict) else str(err or "")
            raise RunFailed(
                f"localize: tap run {j + 1} {result.get('run_id', '')} ended {result.get('status')}: {err}"
            )
        sessions.store(result, session.agent_name, getattr(args, "db", None))
        for o in (result.get("validation") or {}).get("outputs") or []:
            name = str(o.get("name", ""))[len(taps.TAP) :]
            h = host.get(taps.TAP + name, {})
            figures[name] = {
                "sqnr_db": o.get("sqnr_db"),
                "cosine": o.get("cosine"),
                "max_rel_err": o.get("max_rel_err"),
                "host_sqnr_db": h.get("sqnr_db"),
                "host_cosine": h.get("cosine"),
                "run_id": result.get("run_id"),
            }
        for p in (dev, flt):
            p.unlink(missing_ok=True)
        if say is not None:
            say(f"  taps {j + 1}/{len(batches)}: {len(batch)} tensors ({result.get('run_id')})")
    return figures
