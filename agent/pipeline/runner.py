"""The worker's pipeline run: frames from the inputs file through each
stream's stages, under the run's load pattern (the same schedule, pacer and
drop/queue policy as a bench: ``agent/load/paced.py``), every stage timed.

Stream 0 writes ``iterations.npy`` and ``arrivals.npy`` as a bench does, so
telemetry, power and the load summary align on the one clock; each stream's
frames and stage times stay in memory and go into ``pipeline{}``
(agent/pipeline/summary.py). Several streams run in threads, each with its own
model sessions (the runtimes release the GIL while they compute), as trtexec
``--streams`` does. After the measured phase, off the clock: each model alone,
back to back (the model-only rate beside the application's), stream 0 alone
when there were several (the contention), then placement.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent import messages
from agent import rundir as files
from agent.clock import now_ns
from agent.errors import BadInput
from agent.load.loop import IterationLog, Loop
from agent.load.paced import measure_paced
from agent.load.summary import summarize
from agent.pipeline import summary
from agent.pipeline.stages.base import Item, Stage, build
from agent.pipeline.stages.model import ModelStage
from agent.runtimes.base import npz_arrays
from agent.spec import RunSpec
from agent.stats import latency_summary_ms
from agent.store.paths import locate_artifact

# off the clock, after the measured phase: a quarter of its length, 0.25-1 s
# for each model alone, twice that for stream 0 alone (contention)
ALONE_S = (0.25, 1.0)
STAGE_TIMES = "pipeline-stages.npy"
LIVE_S = 1.0  # the live per-stage figures, at most this often


def load_frames(spec: RunSpec, run_dir: Path) -> np.ndarray:
    """uint8 NxHxWx3 frames from the inputs file (its ``frames`` array, else its only one)."""
    if not spec.inputs_sha256:
        raise BadInput("a pipeline needs frames: --inputs FRAMES.npz (uint8 NxHxWx3)")
    arrays = npz_arrays(locate_artifact(run_dir, spec.inputs_sha256, "inputs"))
    if "frames" in arrays:
        a = arrays["frames"]
    elif len(arrays) == 1:
        (a,) = arrays.values()
    else:
        raise BadInput(f"inputs file holds {', '.join(sorted(arrays))}; name the frames array 'frames'")
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or not len(a):
        shape = "x".join(map(str, a.shape))
        raise BadInput(
            f"pipeline frames must be uint8 NxHxWx3 images; the inputs file holds {a.dtype} {shape}"
        )
    return a


class Stream:
    """One pipeline instance: its stages, its frames, its timing rows."""

    def __init__(self, pipeline: dict[str, Any], index: int, spec: RunSpec, run_dir: Path) -> None:
        self.name = pipeline["name"]
        self.index = index  # stream number within this pipeline
        self.stages: list[Stage] = []
        ctx: dict[str, Any] = {"pipeline": self.name, "run_dir": run_dir, "spec": spec, "last_model": None}
        for j, opts in enumerate(pipeline["stages"]):
            ctx["index"] = j
            st = build(opts, ctx)
            if isinstance(st, ModelStage):
                ctx["last_model"] = st
            self.stages.append(st)
        self.frames: np.ndarray = np.empty(0)
        self.n = 0  # frames run
        s = len(self.stages)
        self.times = np.zeros((4096, s), np.int64)  # ns per stage, one row per frame run
        self.items = np.zeros((4096, s), np.int32)
        self.outputs: list[Any] = []
        self.keep = 0

    def _grow(self) -> None:
        self.times = np.concatenate([self.times, np.zeros_like(self.times)])
        self.items = np.concatenate([self.items, np.zeros_like(self.items)])

    def frame(self) -> None:
        """One frame through every stage: the loop's ``fn``."""
        i = self.n
        if i == len(self.times):
            self._grow()
        f = self.frames[i % len(self.frames)]
        item = Item(f, f)
        row, counts = self.times[i], self.items[i]
        clock = time.monotonic_ns
        t = clock()
        for j, st in enumerate(self.stages):
            item = st(item)
            t2 = clock()
            row[j] = t2 - t
            counts[j] = st.items
            t = t2
        if i < self.keep:
            self.outputs.append(_plain(item.value))
        self.n = i + 1

    def snapshot(self) -> dict[str, Any]:
        """What the measured phase gathered, before the runs off the clock reuse the stream."""
        return {
            "name": self.name,
            "index": self.index,
            "stages": [{"name": st.name, "kind": st.kind, **st.info()} for st in self.stages],
            "model_stage": [isinstance(st, ModelStage) for st in self.stages],
            "times": self.times[: self.n].copy(),
            "items": self.items[: self.n].copy(),
            "outputs": list(self.outputs),
        }

    def reset(self) -> None:
        self.n = 0
        self.outputs = []

    def close(self) -> None:
        for st in self.stages:
            st.close()


def _plain(value: Any) -> Any:
    """A stage's result as JSON: texts, labels and boxes as lists."""
    if isinstance(value, np.ndarray):
        return (
            np.round(value.astype(np.float64), 2).tolist()
            if value.size <= 4096
            else {"shape": list(value.shape)}
        )
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value][:256]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)[:200]


def run_pipeline(spec: RunSpec, run_dir: Path, send: Any) -> dict[str, Any]:
    """The worker's result part of a pipeline run."""
    assert spec.pipeline is not None
    frames = load_frames(spec, run_dir)
    lock = threading.Lock()

    def locked(msg: dict) -> None:
        with lock:
            send(msg)

    t_load = now_ns()
    streams = [Stream(p, k, spec, run_dir) for p in spec.pipeline["pipelines"] for k in range(p["streams"])]
    init_ms = (now_ns() - t_load) / 1e6
    try:
        return _measure(spec, run_dir, locked, streams, frames, init_ms)
    finally:
        for s in streams:
            s.close()


def _measure(
    spec: RunSpec, run_dir: Path, send: Any, streams: list[Stream], frames: np.ndarray, init_ms: float
) -> dict[str, Any]:
    for s in streams:
        s.frames = frames
    # the cold first frame: shapes that do not connect are a bad input here
    t0 = now_ns()
    for s in streams:
        s.frame()
    t1 = now_ns()
    first_ms = (t1 - t0) / 1e6 / len(streams)
    send({"type": "phase", "phase": "warmup", "t_ns": now_ns()})
    end = now_ns() + int(spec.warmup_s * 1e9)
    while now_ns() < end:
        for s in streams:
            s.frame()
    for s in streams:
        s.reset()
        s.keep = min(spec.pipeline["keep_outputs"], len(frames))  # type: ignore[index]
    send({"type": "phase", "phase": "measure", "t_ns": now_ns()})
    window_s = spec.soak.window_s if spec.soak else None
    results: list[dict[str, Any] | None] = [None] * len(streams)
    logs: list[tuple[IterationLog | None, IterationLog | None]] = []
    errors: list[BaseException] = []
    for k, _s in enumerate(streams):
        if k == 0:
            log = IterationLog(run_dir / files.ITERATIONS)
            log.append(np.array([[t0, t1, files.WARMUP]], np.int64))
            arr = IterationLog(run_dir / files.ARRIVALS, cols=4) if spec.load is not None else None
        else:
            log, arr = (
                None,
                IterationLog(run_dir / f"pipeline-arrivals-{k}.npy", cols=4) if spec.load else None,
            )
        logs.append((log, arr))

    def quiet(msg: dict) -> None:  # streams after the first: their numbers come in the result
        pass

    def one(k: int) -> None:
        try:
            s = streams[k]
            loop = Loop(s.frame, logs[k][0], send if k == 0 else quiet)
            if spec.load is None:
                m = loop.measure(spec.duration_s, spec.min_iterations, window_s if k == 0 else None)
                m.update(
                    frames=m["iterations"], late=0, dropped=0, max_consecutive_misses=0, burst_starts_ns=[]
                )
            else:
                m = measure_paced(
                    loop,
                    spec.load,
                    logs[k][1],
                    spec.duration_s,
                    spec.min_iterations,
                    window_s if k == 0 else None,
                )
            results[k] = m
        except BaseException as exc:  # noqa: BLE001 - re-raised in the worker's thread below
            errors.append(exc)

    stop = threading.Event()
    ticker = threading.Thread(target=_live, args=(streams[0], spec, send, stop), daemon=True)
    ticker.start()
    try:
        if len(streams) == 1:
            one(0)
        else:
            threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(len(streams))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        stop.set()
        ticker.join()
        for log, arr in logs:
            for f in (log, arr):
                if f is not None:
                    f.close()
    if errors:
        raise errors[0]
    send({"type": "phase", "phase": "profile", "t_ns": now_ns()})
    per_stream = []
    for k, s in enumerate(streams):
        m = results[k]
        assert m is not None
        per_stream.append((s.snapshot(), m, _frames_of(run_dir, spec, k, m)))
    _save_stage_times(run_dir, per_stream[0][0])
    alone_s = min(ALONE_S[1], max(ALONE_S[0], spec.duration_s / 4))
    alone = _alone(streams[0], alone_s)
    contention = _contention(streams[0], 2 * alone_s) if len(streams) > 1 else None
    placements = []
    if spec.placement:
        for st in streams[0].stages:
            if isinstance(st, ModelStage):
                placements.append({"stage": st.name, **(st.placement() or {})})
    doc = summary.pipeline_doc(spec, per_stream, alone, contention, placements)
    s0, m0, fr0 = per_stream[0]
    first_model = next((st for st in streams[0].stages if isinstance(st, ModelStage)), None)
    span_s = (m0["end_ns"] - m0["start_ns"]) / 1e9
    part: dict[str, Any] = {
        "model": _model_part(first_model),
        "runtime": first_model.runner.info() if first_model else {"name": "none"},
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "inputs": [{"name": "frames", "shape": list(frames.shape), "dtype": "uint8"}],
        "latency_ms": latency_summary_ms(m0["latencies_ns"]),
        "iterations": m0["iterations"],
        "duration_s": span_s,
        "throughput_ips": m0["iterations"] / span_s if span_s > 0 else 0.0,
        "measure_start_ns": m0["start_ns"],
        "measure_end_ns": m0["end_ns"],
        "pipeline": doc,
    }
    if spec.load is not None:
        part["load"] = summarize(
            fr0, spec.load, m0["start_ns"], m0["end_ns"], m0["max_consecutive_misses"], m0["burst_starts_ns"]
        )
    if placements:
        part["placement"] = {k: v for k, v in placements[0].items() if k != "stage"}
    return part


def _live(stream: Stream, spec: RunSpec, send: Any, stop: threading.Event) -> None:
    """Each stage's p50 so far, every LIVE_S (journaled as a log event; the
    controller draws the live per-stage bars from it). Reads rows the frame
    thread is writing: a row in progress can be off by one frame, harmless here."""
    budget = spec.load.deadline_ns / 1e6 if spec.load is not None and spec.load.deadline_ns else None
    names = [st.name for st in stream.stages]
    while not stop.wait(LIVE_S):
        n = stream.n
        if n < 1:
            continue
        rows = stream.times[max(0, n - 1000) : n]
        p50 = np.median(rows, axis=0) / 1e6
        stages = [[nm, round(float(v), 3)] for nm, v in zip(names, p50, strict=True)]
        send(messages.Stages(t_ns=now_ns(), pipeline_stages=stages, frames=n, budget_ms=budget).to_dict())


def _frames_of(run_dir: Path, spec: RunSpec, k: int, m: dict[str, Any]) -> np.ndarray:
    """The stream's frame rows (arrival, start, end, burst)."""
    if spec.load is None:
        it = files.load_iterations(run_dir) if k == 0 else None
        if it is not None:
            rows = it[it[:, 2] == files.MEASURED]
            return np.stack([rows[:, 0], rows[:, 0], rows[:, 1], np.full(len(rows), -1)], axis=1)
        n = m["iterations"]
        return np.zeros((n, 4), np.int64)  # back to back: only the stage times matter
    path = run_dir / (files.ARRIVALS if k == 0 else f"pipeline-arrivals-{k}.npy")
    return np.load(path, allow_pickle=False)


def _alone(stream: Stream, seconds: float) -> list[dict[str, Any]]:
    out = []
    for st in stream.stages:
        if isinstance(st, ModelStage):
            a = st.alone(seconds)
            out.append({"stage": st.name, "model": st.opts["model_name"], **(a or {})})
    return out


def _contention(stream: Stream, seconds: float) -> dict[str, Any]:
    """Stream 0 alone, back to back, for a short while: its service time with
    no other stream on the board."""
    stream.reset()
    stream.keep = 0
    lat = []
    end = now_ns() + int(seconds * 1e9)
    while True:
        t = now_ns()
        stream.frame()
        lat.append(now_ns() - t)
        if now_ns() >= end and len(lat) >= 3:
            break
    return {"frames": len(lat), "service_ms": latency_summary_ms(np.asarray(lat, np.int64))}


def _model_part(st: ModelStage | None) -> dict[str, Any]:
    if st is None:
        return {"name": "pipeline", "sha256": "", "size_bytes": 0, "format": "none"}
    return {
        "name": st.opts["model_name"],
        "sha256": st.opts["model_sha256"],
        "size_bytes": st.path.stat().st_size,
        "format": st.format,
    }


def _save_stage_times(run_dir: Path, snap: dict[str, Any]) -> None:
    """``pipeline-stages.npy``: stream 0's ns per stage per frame (the HTML timeline's data)."""
    np.save(run_dir / STAGE_TIMES, snap["times"])
