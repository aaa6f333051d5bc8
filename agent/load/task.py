"""What a worker process does for one run: load the model, time a cold first
inference, warm up, measure, then (outside the measured phase) work out where
each node ran. ``run_task`` reports through ``send`` (docs/internals.md) and
never raises: a failure becomes one ``error`` message with a one-line text.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent import rundir
from agent.clock import now_ns
from agent.errors import EdgebenchError, one_line
from agent.load.loop import Loop
from agent.load.open_model import open_model
from agent.load.paced import measure_paced
from agent.load.summary import summarize
from agent.messages import Error, Phase, Result
from agent.rundir import IterationLog
from agent.runtimes.base import Runner, is_dynamic
from agent.spec import RunSpec
from agent.stats import PERCENTILES, latency_summary_ms
from agent.store.paths import locate_artifact
from agent.validate.run import validate_samples
from agent.validity import percentile_support

Send = Callable[[dict], None]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux (bytes on macOS)
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def run_task(spec: RunSpec, run_dir: Path, send: Send) -> dict | None:
    """Run one task; returns the worker's result part (also sent), or None on error."""
    try:
        part = _run(spec, Path(run_dir), send)
    except EdgebenchError as exc:
        send(Error(exc.code, one_line(str(exc))).to_dict())
        return None
    except Exception as exc:  # a runtime bug must still end in one clear line
        send(Error("run_failed", one_line(f"{type(exc).__name__}: {exc}")).to_dict())
        return None
    send(Result(part).to_dict())
    return part


def _phase(send: Send, phase: str) -> None:
    send(Phase(phase, now_ns()).to_dict())


def _timed(runner: Runner, spec: RunSpec, run_dir: Path, send: Send, part: dict) -> Any:
    """bench, soak, placement: a cold first inference, then (not for placement)
    warm-up and the measured phase (back to back, or under ``spec.load``'s
    pattern: latency then counts from each frame's arrival); returns the feeds it ran."""
    npz = locate_artifact(run_dir, spec.inputs_sha256, "inputs") if spec.inputs_sha256 else None
    feeds = runner.make_inputs(spec, npz)
    part["inputs"] = inputs_run(runner, spec)
    first_run = getattr(runner, "first_run", runner.run)
    t0 = now_ns()
    first_run(feeds)  # cold: the first inference pays lazy allocation and kernel selection
    t1 = now_ns()
    part["first_inference_ms"] = (t1 - t0) / 1e6
    if spec.kind == "placement":
        return feeds
    run = runner.run

    def once() -> Any:
        return run(feeds)

    log = IterationLog(run_dir / rundir.ITERATIONS)
    frames_log = IterationLog(run_dir / rundir.ARRIVALS, cols=4) if spec.load is not None else None
    try:
        loop = Loop(once, log, send)
        loop.record(t0, t1, 0)
        _phase(send, "warmup")
        part["warmup_iterations"] = loop.warmup(spec.warmup_s)
        _phase(send, "measure")
        # soak windows reach the agent as messages only; it enriches and keeps them
        window_s = spec.soak.window_s if spec.kind == "soak" and spec.soak else None
        if spec.load is None:
            m = loop.measure(spec.duration_s, spec.min_iterations, window_s)
        else:
            m = measure_paced(loop, spec.load, frames_log, spec.duration_s, spec.min_iterations, window_s)
    finally:
        log.close()
        if frames_log is not None:
            frames_log.close()
    if spec.load is not None:
        part["load"] = summarize(
            rundir.load_arrivals(run_dir),
            spec.load,
            m["start_ns"],
            m["end_ns"],
            m["max_consecutive_misses"],
            m["burst_starts_ns"],
        )
    span_s = (m["end_ns"] - m["start_ns"]) / 1e9
    sorted_ms = np.sort(np.asarray(m["latencies_ns"], dtype=np.float64)) / 1e6
    part.update(
        {
            "latency_ms": latency_summary_ms(m["latencies_ns"]),
            # which percentiles the count supports (LoadGen early stopping): validity{}
            "latency_support": percentile_support(sorted_ms, PERCENTILES),
            "iterations": m["iterations"],
            "duration_s": span_s,
            "throughput_ips": m["iterations"] / span_s if span_s > 0 else 0.0,
            # --batch N: each call is N samples; throughput_ips stays calls per second
            "batch": spec.batch or 1,
            "samples_per_s": (spec.batch or 1) * m["iterations"] / span_s if span_s > 0 else 0.0,
            "measure_start_ns": m["start_ns"],
            "measure_end_ns": m["end_ns"],
        }
    )
    return feeds


def inputs_run(runner: Runner, spec: RunSpec) -> list[dict]:
    """``inputs[{name, shape, dtype}]``: the shapes actually run; a dynamic batch
    that defaulted to 1 carries a ``note`` saying so (the terminal prints it)."""
    out = []
    for i in runner.input_specs():
        entry: dict[str, Any] = {"name": i.name, "shape": [int(d) for d in i.shape], "dtype": str(i.dtype)}
        declared = list(i.declared_shape)
        if declared and is_dynamic(declared[0]) and i.name not in spec.input_shapes and not spec.batch:
            dims = "x".join(["N", *(str(d) for d in entry["shape"][1:])])
            entry["note"] = f"dynamic batch ran as 1 (set it: --input-shape {i.name}={dims})"
        out.append(entry)
    return out


def _run(spec: RunSpec, run_dir: Path, send: Send) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    _phase(send, "load")
    if spec.kind == "pipeline":
        from agent.pipeline.runner import run_pipeline  # numpy and the stages: only for a pipeline

        part = run_pipeline(spec, run_dir, send)
        part["peak_rss_bytes"] = peak_rss_bytes()
        _phase(send, "done")
        return part
    runner, model, fmt, init_ms = open_model(spec, run_dir)
    part: dict[str, Any] = {
        "model": {
            "name": spec.model_name,
            "sha256": sha256_file(model),
            "size_bytes": model.stat().st_size,
            "format": fmt,
        },
        "runtime": runner.info(),
        "init_ms": init_ms,
    }
    if spec.kind == "validate":
        # every reference sample once, through the same runner, options and placement as bench
        feeds = validate_samples(runner, spec, run_dir, send, part)
    else:
        feeds = _timed(runner, spec, run_dir, send, part)
    part["runtime"] = runner.info()
    start = getattr(runner, "start", None)
    if start is not None:
        part["start"] = {**start, "first_inference_ms": part.get("first_inference_ms")}

    if (
        spec.placement
        or spec.kind == "placement"
        or spec.fail_on_fallback
        or spec.max_cpu_ops is not None
        or (spec.max_partitions is not None)
    ):
        _phase(send, "profile")  # after the measured phase: profiling never distorts timing
        try:
            placement = runner.placement(feeds)
        except EdgebenchError:
            raise
        except Exception as exc:
            placement = {"runtime": runner.name, "error": one_line(f"{type(exc).__name__}: {exc}")}
        with open(run_dir / rundir.PLACEMENT, "w") as f:
            json.dump(placement, f, indent=1)
        part["placement"] = placement
    part["peak_rss_bytes"] = peak_rss_bytes()
    runner.close()
    _phase(send, "done")
    return part
