"""The benchmark task on real runtimes: phases, stopping rules, iterations.npy,
progress rate, soak windows, percentiles, and one run through a spawned worker."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
from conftest import put_artifact

from agent.load.loop import Loop
from agent.load.task import run_task
from agent.spec import RunSpec
from agent.stats import latency_summary_ms
from controller.models import onnx_cnn, tflite_builder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"cnn": onnx_cnn.tiny_cnn(d / "tiny.onnx"), "tflite": tflite_builder.float_cnn(d / "float.tflite")}


@pytest.fixture
def state(tmp_path):
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    return tmp_path


def run(state: Path, model: Path, **kw) -> tuple[dict, list[dict]]:
    sha = put_artifact(state, model)
    spec = RunSpec.from_dict({"kind": "bench", "model_sha256": sha, "threads": 1, **kw})
    msgs: list[dict] = []
    part = run_task(spec, state / "runs/r1", msgs.append)
    assert part is not None, [m for m in msgs if m["type"] == "error"]
    return part, msgs


def test_ort_bench_result_part_and_iterations_file(state, models):
    part, msgs = run(state, models["cnn"], warmup_s=0.2, duration_s=0.5, min_iterations=10, placement=False)
    data = part
    assert data["model"]["format"] == "onnx"
    assert data["model"]["sha256"] == hashlib.sha256(models["cnn"].read_bytes()).hexdigest()
    assert data["model"]["size_bytes"] == models["cnn"].stat().st_size
    assert data["runtime"]["name"] == "onnxruntime" and data["runtime"]["providers"] == [
        "CPUExecutionProvider"
    ]
    assert data["init_ms"] > 0 and data["first_inference_ms"] > 0
    assert data["peak_rss_bytes"] > 20 * 2**20
    assert data["duration_s"] >= 0.5
    assert data["throughput_ips"] == pytest.approx(data["iterations"] / data["duration_s"])
    assert "placement" not in data  # placement off: no profiled pass

    it = np.load(state / "runs/r1/iterations.npy")
    assert it.dtype == np.int64 and it.shape[1] == 3
    # the cold first inference, then warm-up rows, then the measured rows
    assert it[0, 2] == 0
    measured = it[it[:, 2] == 1]
    assert len(measured) == data["iterations"]
    assert (it[it[:, 2] == 0]).shape[0] == data["warmup_iterations"] + 1
    assert (np.diff(it[:, 0]) > 0).all() and (it[:, 1] >= it[:, 0]).all()
    assert 0 <= measured[0, 0] - data["measure_start_ns"] < 1e6 and measured[-1, 1] == data["measure_end_ns"]
    # the reported percentiles are the nearest-rank ones of exactly these rows
    assert data["latency_ms"] == latency_summary_ms(measured[:, 1] - measured[:, 0])

    phases = [m["phase"] for m in msgs if m["type"] == "phase"]
    assert phases == ["load", "warmup", "measure", "done"]
    assert msgs[-1]["type"] == "result" and msgs[-1]["data"] is part


def test_min_iterations_extends_a_short_duration_exactly(state, models):
    part, _ = run(state, models["cnn"], warmup_s=0, duration_s=0, min_iterations=37, placement=False)
    assert part["iterations"] == 37
    it = np.load(state / "runs/r1/iterations.npy")
    assert (it[:, 2] == 1).sum() == 37 and (it[:, 2] == 0).sum() == 1  # cold run only


def test_duration_extends_past_min_iterations(state, models):
    part, _ = run(state, models["cnn"], warmup_s=0, duration_s=0.4, min_iterations=1, placement=False)
    assert part["duration_s"] >= 0.4 and part["iterations"] > 1


def test_progress_is_at_most_2hz(state, models):
    _, msgs = run(state, models["cnn"], warmup_s=0, duration_s=1.6, min_iterations=1, placement=False)
    prog = [m for m in msgs if m["type"] == "progress"]
    assert 2 <= len(prog) <= 4
    gaps = np.diff([m["t_ns"] for m in prog])
    assert (gaps >= 0.5e9).all()
    assert all(m["target_s"] == 1.6 and m["throughput_ips"] > 0 for m in prog)
    assert [m["iterations"] for m in prog] == sorted(m["iterations"] for m in prog)


def test_soak_sends_windows_covering_the_run(state, models):
    part, msgs = run(
        state,
        models["cnn"],
        kind="soak",
        warmup_s=0,
        duration_s=1.0,
        min_iterations=1,
        placement=False,
        soak={"window_s": 0.3},
    )
    wins = [m for m in msgs if m["type"] == "window"]
    assert len(wins) == 4  # 3 full windows and the tail
    assert sum(w["iterations"] for w in wins) == part["iterations"]
    for a, b in zip(wins, wins[1:], strict=False):
        assert b["t_start_ns"] == a["t_end_ns"]
    for w in wins[:-1]:
        assert (w["t_end_ns"] - w["t_start_ns"]) / 1e9 == pytest.approx(0.3, abs=0.05)
        assert w["p50_ms"] <= w["p99_ms"] and w["throughput_ips"] > 0
    # the windows reach the agent once, as messages: the result part carries no copy
    assert "soak_windows" not in part


def test_litert_bench_with_placement(state, models):
    part, msgs = run(state, models["tflite"], warmup_s=0.1, duration_s=0.3, min_iterations=5)
    assert part["model"]["format"] == "tflite" and part["runtime"]["name"] == "litert"
    assert part["iterations"] >= 5
    p = part["placement"]
    assert p["runtime"] == "litert" and p["partitions"] == 1 and p["fallback"] is False
    assert p["nodes_by_device"] == {"XNNPACK": 5}
    phases = [m["phase"] for m in msgs if m["type"] == "phase"]
    # profiling/placement comes after the measured phase, never inside it
    assert phases == ["load", "warmup", "measure", "profile", "done"]
    assert (state / "runs/r1/placement.json").exists()


def test_placement_kind_runs_no_benchmark(state, models):
    part, msgs = run(state, models["cnn"], kind="placement")
    assert "iterations" not in part and not (state / "runs/r1/iterations.npy").exists()
    assert part["placement"]["nodes_by_device"]["CPU"] == part["placement"]["total_nodes"] > 5
    assert [m["phase"] for m in msgs if m["type"] == "phase"] == ["load", "profile", "done"]


def test_loop_flushes_full_chunks(tmp_path, monkeypatch):
    """More rows than one buffer: every row still lands in the file, in order."""
    import agent.load.loop as loop_mod
    from agent.rundir import IterationLog

    monkeypatch.setattr(loop_mod, "CHUNK", 64)
    log = IterationLog(tmp_path / "iterations.npy")
    lp = Loop(lambda: None, log, lambda m: None)
    w = lp.warmup(0.01)
    m = lp.measure(0.0, 1000)
    log.close()
    it = np.load(tmp_path / "iterations.npy")
    assert m["iterations"] == 1000 and len(it) == w + 1000
    assert (np.diff(it[:, 0]) >= 0).all()
    assert len(m["latencies_ns"]) == 1000


def test_spawned_worker_runs_the_task(state, models):
    """The real path: agent.runs.worker.entry in a spawn-context process."""
    from agent.runs.worker import entry

    spec = RunSpec.from_dict(
        {
            "kind": "bench",
            "model_sha256": put_artifact(state, models["cnn"]),
            "threads": 1,
            "warmup_s": 0,
            "duration_s": 0.2,
            "min_iterations": 5,
        }
    )
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=entry, args=(spec.to_dict(), str(state / "runs/r1"), child))
    proc.start()
    child.close()
    msgs = []
    while True:
        try:
            msgs.append(parent.recv())
        except EOFError:
            break
    proc.join(60)
    assert proc.exitcode == 0
    result = [m for m in msgs if m["type"] == "result"]
    assert result, msgs
    data = result[0]["data"]
    assert data["iterations"] >= 5 and data["placement"]["total_nodes"] > 5
    # the profiled pass's verbose ORT log went to the worker's stderr.log
    assert "Node placements" in (state / "runs/r1/stderr.log").read_text()
