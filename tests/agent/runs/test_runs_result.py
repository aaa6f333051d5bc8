"""The result document and its ``series{}``: built once on the agent, and the
series agree with the figures beside them; the run directory's readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent import rundir
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.runs import series

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _run(agent, sha: str, **kw) -> dict:
    spec = {"kind": "bench", "model_sha256": sha, "model_name": "tiny", "warmup_s": 0.1, "duration_s": 2.2,
            "min_iterations": 10, "placement": False, "telemetry_rate_hz": 20.0}  # fmt: skip
    spec.update(kw)
    run_id = agent.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id
    assert agent.server.runs.wait(run_id, timeout=120) == "completed"
    return json.loads(agent.stub.GetRun(pb.GetRunRequest(run_id=run_id)).result_json)


@pytest.fixture
def board_agent(agent_factory):
    return agent_factory(sysfs_root=str(FIXTURES / "orin-nano"), profile="orin-nano")


@pytest.mark.serial  # against the wall clock (a rate, a span of samples): run alone (Makefile)
def test_a_bench_result_carries_binned_throughput_that_agrees_with_its_iterations(
    board_agent, push, tiny_onnx_model
):
    res = _run(board_agent, push(board_agent.stub, tiny_onnx_model))
    tp = res["series"]["throughput"]
    assert tp["label"] == "inferences/s (1 s bins)" and tp["resolution_s"] == 1.0
    # whole 1 s bins inside the measured phase: each is one second's count of measured inferences
    assert len(tp["t_s"]) >= 1 and all(y > 0 for y in tp["y"])
    assert max(tp["y"]) <= res["iterations"]
    assert np.mean(tp["y"]) == pytest.approx(res["throughput_ips"], rel=0.25)
    assert 0 < tp["t_s"][0] < res["duration_s"] + 1


def test_telemetry_series_hold_the_zones_and_ranges_of_the_telemetry_summary(
    board_agent, push, tiny_onnx_model
):
    res = _run(board_agent, push(board_agent.stub, tiny_onnx_model))
    tel, summary = res["series"]["telemetry"], res["telemetry"]["summary"]
    assert set(tel["temps_c"]) == set(summary["temps_c"])
    for zone, st in summary["temps_c"].items():
        vals = [v for v in tel["temps_c"][zone] if v is not None]
        assert vals and st["min"] - 1e-3 <= min(vals) and max(vals) <= st["max"] + 1e-3
    assert all(len(v) == len(tel["t_s"]) for v in tel["temps_c"].values())
    assert tel["resolution_s"] == pytest.approx(1 / 20.0, rel=0.5)
    assert tel["t_s"] == sorted(tel["t_s"])


def test_a_soak_result_plots_its_own_windows_once(board_agent, push, tiny_onnx_model):
    res = _run(
        board_agent,
        push(board_agent.stub, tiny_onnx_model),
        kind="soak",
        duration_s=1.6,
        soak={"window_s": 0.4},
    )
    windows = res["soak"]["windows"]
    tp = res["series"]["throughput"]
    assert tp["label"] == "inferences/s (window)" and len(tp["y"]) == len(windows) >= 3
    assert tp["y"] == [series._r(w["throughput_ips"]) for w in windows]
    assert "soak_windows" not in res  # the worker's copy is not carried beside the enriched one


def test_the_current_envelope_keeps_every_peak_at_any_length():
    n = 250_000
    t = np.arange(n, dtype=np.int64) * 10_000  # 100 kS/s
    cur = np.full(n, 0.2)
    spikes = [1_234, 77_777, 249_999]
    cur[spikes] = [1.5, 2.25, 0.9]
    env = series.current(0, t, cur)
    assert len(env["t_s"]) == series.MAX_POINTS == len(env["max"]) == len(env["min"])
    assert sorted(env["max"], reverse=True)[:3] == [2.25, 1.5, 0.9]
    assert min(env["min"]) == 0.2
    assert env["resolution_s"] == pytest.approx(2.5 / series.MAX_POINTS, rel=1e-3)


def test_telemetry_series_are_thinned_to_the_cap_with_nulls_for_missing_zones():
    samples = [
        {"t_ns": i * 10_000_000, "temps_c": {"cpu": 40.0 + i % 7, **({"gpu": 39.0} if i % 2 else {})}}
        for i in range(5000)
    ]
    tel = series.telemetry(0, samples)
    step = -(-5000 // series.MAX_POINTS)  # every 9th sample is kept
    kept = range(0, 5000, step)
    assert len(tel["t_s"]) == len(kept) <= series.MAX_POINTS and len(tel["temps_c"]["gpu"]) == len(kept)
    assert tel["t_s"] == [round(i * 0.01, 4) for i in kept]
    # gpu only in odd samples: the kept even ones are null, not dropped nor filled in
    assert tel["temps_c"]["gpu"] == [39.0 if i % 2 else None for i in kept]
    assert tel["temps_c"]["cpu"] == [40.0 + i % 7 for i in kept]
    assert tel["resolution_s"] == pytest.approx(0.01 * -(-5000 // series.MAX_POINTS))


def test_measured_rows_fall_back_to_every_row_when_none_is_measured(tmp_path):
    it = np.array([[30, 40, 1], [0, 10, 0], [10, 20, 1]], dtype=np.int64)
    np.save(tmp_path / rundir.ITERATIONS, it)
    loaded = rundir.load_iterations(tmp_path)
    assert loaded[:, 0].tolist() == [0, 10, 30]  # sorted by start
    assert rundir.measured_rows(loaded)[:, 0].tolist() == [10, 30]
    assert rundir.measured_span_ns(loaded) == (10, 40)
    warm_only = it[it[:, 2] == 0]
    assert rundir.measured_rows(warm_only).tolist() == warm_only.tolist()
    assert rundir.load_iterations(tmp_path / "missing").shape == (0, 3)
    assert rundir.measured_span_ns(np.empty((0, 3))) is None


def test_telemetry_reader_skips_a_torn_last_line(tmp_path):
    (tmp_path / rundir.TELEMETRY).write_text('{"t_ns": 1, "temps_c": {}}\n{"t_ns": 2}\n{"t_ns": 3, "tem')
    assert [s["t_ns"] for s in rundir.load_telemetry(tmp_path)] == [1, 2]
    assert rundir.load_telemetry(tmp_path / "missing") == []


def test_latency_quantiles_match_the_result_percentiles(board_agent, push, tiny_onnx_model):
    res = _run(board_agent, push(board_agent.stub, tiny_onnx_model))
    lat = res["series"]["latency_ms"]
    q = lat["quantiles"]
    assert lat["n"] == res["iterations"] and len(q) == series.LATENCY_QUANTILES + 1
    assert q == sorted(q)
    assert q[0] == pytest.approx(res["latency_ms"]["min"], rel=1e-3)
    assert q[-1] == pytest.approx(res["latency_ms"]["max"], rel=1e-3)
    # nearest-rank p50/p99 against the interpolated quantiles: within one step of the distribution
    assert q[495] <= res["latency_ms"]["p50"] <= q[505]
    assert q[985] <= res["latency_ms"]["p99"] <= q[995]
