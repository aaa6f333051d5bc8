"""Load patterns (issue 15): arrivals computed from the pattern alone, latency
counted from the scheduled arrival, misses counted under overload, and the
figures checked against models of known cost (tests/scenario/timed_model.py:
the real worker task with a runner that sleeps a known time)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scenario.timed_model import write_model

from agent.errors import BadInput
from agent.load.schedule import ASAP, Schedule
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.rundir import load_arrivals, load_iterations
from agent.spec import LoadSpec, RunSpec
from agent.spec_text import parse_burst
from controller.runopts import add_run_options
from controller.specs import from_options as spec_from_args

pytestmark = pytest.mark.serial  # timing against the wall clock: run alone (Makefile)

TASK = "scenario.timed_model:sleep_task"
SHA = "a" * 64


def arrivals(load: LoadSpec, n: int, origin: int = 1_000) -> tuple[np.ndarray, np.ndarray]:
    s = Schedule(load, origin)
    got = [s.pop() for _ in range(n)]
    return np.array([a for a, _ in got]) - origin, np.array([b for _, b in got])


# -- the schedule ---------------------------------------------------------------
def test_fixed_rate_arrivals_are_exact_multiples_of_the_interval():
    a, b = arrivals(LoadSpec(rate_hz=30.0), 10_000)
    assert a[0] == 0 and a[-1] == round(9_999 * 1e9 / 30)  # no drift over 10,000 frames
    assert np.all(np.abs(np.diff(a) - 1e9 / 30) <= 1) and np.all(b == -1)


def test_burst_schedule_starts_with_idle_and_repeats_at_the_cycle():
    # 2 s bursts at 10 FPS after 8 s idle: 20 frames per burst, one burst every 10 s
    a, b = arrivals(LoadSpec(rate_hz=10.0, burst_on_s=2.0, burst_off_s=8.0), 60)
    assert list(np.bincount(b)) == [20, 20, 20]
    assert a[0] == 8e9 and a[20] == 18e9 and a[40] == 28e9
    assert a[19] == 8e9 + 1.9e9
    # a count burst: 30 inferences at 30 FPS, then 5 s idle: a 6 s cycle
    a, b = arrivals(LoadSpec(rate_hz=30.0, burst_on_n=30, burst_off_s=5.0), 61)
    assert a[0] == 5e9 and a[30] == 11e9 and a[60] == 17e9 and b[60] == 2


def test_back_to_back_bursts_start_on_schedule_and_then_run_as_soon_as_possible():
    s = Schedule(LoadSpec(burst_on_s=1.0, burst_off_s=2.0), 0)
    assert s.pop(0) == (2_000_000_000, 0)
    assert s.pop(2_500_000_000) == (ASAP, 0)
    assert s.pop(3_000_000_001) == (5_000_000_000, 1)  # past the burst: the next one, on time
    # a count burst idles OFF after its last inference ends (its length is the model's)
    s = Schedule(LoadSpec(burst_on_n=2, burst_off_s=1.0), 0)
    assert s.pop(0) == (1_000_000_000, 0) and s.pop(1_100_000_000) == (ASAP, 0)
    assert s.pop(1_300_000_000) == (2_300_000_000, 1)


def test_poisson_arrivals_pass_a_ks_test_against_the_exponential():
    from scipy import stats

    a, _ = arrivals(LoadSpec(poisson_hz=50.0, seed=7), 5000)
    gaps_s = np.diff(a) / 1e9
    assert np.mean(gaps_s) == pytest.approx(1 / 50, rel=0.05)
    assert stats.kstest(gaps_s, "expon", args=(0, 1 / 50)).pvalue > 0.01
    # the test can fail: fixed-rate gaps are not exponential
    fixed, _ = arrivals(LoadSpec(rate_hz=50.0), 5000)
    assert stats.kstest(np.diff(fixed) / 1e9, "expon", args=(0, 1 / 50)).pvalue < 1e-6
    # seeded: the same seed gives the same arrivals, another seed others
    assert np.array_equal(a, arrivals(LoadSpec(poisson_hz=50.0, seed=7), 5000)[0])
    assert not np.array_equal(a, arrivals(LoadSpec(poisson_hz=50.0, seed=8), 5000)[0])


def test_poisson_inside_bursts_keeps_every_arrival_inside_a_burst():
    a, b = arrivals(LoadSpec(poisson_hz=200.0, burst_on_s=0.5, burst_off_s=1.0), 2000)
    phase = (a % int(1.5e9)) / 1e9
    assert np.all(phase >= 1.0) and np.all(b == a // int(1.5e9))


# -- options and spec -----------------------------------------------------------
def parse(*argv: str) -> RunSpec:
    p = argparse.ArgumentParser()
    add_run_options(p)
    return spec_from_args(p.parse_args(list(argv)), "bench", SHA, "m")


def test_run_options_build_the_load_spec():
    spec = parse("--rate", "30", "--burst", "30x/5s", "--late", "queue", "--deadline", "50")
    assert spec.load == LoadSpec(rate_hz=30.0, burst_on_n=30, burst_off_s=5.0, deadline_ms=50.0, late="queue")
    assert parse().load is None
    assert parse("--rate", "30").load.deadline_ns == round(1e9 / 30)  # the frame interval
    assert parse("--rate", "30").load.late_policy == "drop"
    assert parse("--rate-poisson", "50").load.late_policy == "queue"
    assert parse_burst("2s/8s") == (2.0, None, 8.0)
    # the spec travels as JSON and comes back equal
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).load == spec.load


@pytest.mark.parametrize(
    "load, message",
    [
        ({"rate_hz": 30, "poisson_hz": 50}, "not both"),
        ({"rate_hz": 0}, "rate_hz"),
        ({"rate_hz": 1e9}, "rate_hz"),
        ({"rate_hz": 30, "late": "skip"}, "late policy"),
        ({"burst_on_s": 1.0}, "both its length"),
        ({"poisson_hz": 5, "burst_on_n": 3, "burst_off_s": 1}, "timed burst"),
        ({"rate_hz": 30, "deadline_ms": -1}, "deadline"),
        ({"late": "drop"}, "--rate"),
        ({}, "needs --rate"),
        ({"rate_hz": 30, "max_miss_rate": 2}, "miss rate"),
    ],
)
def test_bad_load_specs_are_refused_in_one_line(load, message):
    with pytest.raises(BadInput, match=message):
        RunSpec.from_dict({"kind": "bench", "model_sha256": SHA, "load": load})


@pytest.mark.parametrize("kind", ["placement", "validate"])
def test_a_load_pattern_on_a_run_without_a_timed_phase_is_refused(kind):
    spec = {"kind": kind, "model_sha256": SHA, "reference_sha256": SHA, "load": {"rate_hz": 30}}
    with pytest.raises(BadInput, match=f"not to {kind}"):
        RunSpec.from_dict(spec)


def test_load_options_without_a_pattern_are_refused():
    with pytest.raises(BadInput, match="need a load pattern"):
        parse("--deadline", "20")


# -- runs with models of known cost ---------------------------------------------
def run(agent, push, tmp_path, model: dict, load: dict, duration_s: float, kind: str = "bench", **kw):
    sha = push(agent.stub, write_model(tmp_path / "model.onnx", **model))
    spec = {"kind": kind, "model_sha256": sha, "model_name": "timed", "warmup_s": 0.1,
            "duration_s": duration_s, "min_iterations": 1, "placement": False, "telemetry": False,
            "load": load, **kw}  # fmt: skip
    run_id = agent.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id
    events = [ev for ev in agent.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120)]
    result = json.loads(agent.stub.GetRun(pb.GetRunRequest(run_id=run_id)).result_json)
    assert result["status"] == "completed", result.get("error")
    return result, agent.state_dir / "runs" / run_id, events


def check_against_frames(load: dict, frames: np.ndarray, result: dict) -> None:
    """The summary's counts are the frames file's."""
    done = frames[frames[:, 1] >= 0]
    late = int(np.sum(done[:, 2] - done[:, 0] > load["deadline_ms"] * 1e6))
    assert load["frames"] == len(frames) and load["completed"] == len(done) == result["iterations"]
    assert load["dropped"] == len(frames) - len(done) and load["late"] == late
    assert load["miss_rate"] == pytest.approx((load["late"] + load["dropped"]) / load["frames"])
    span_s = result["duration_s"]
    assert load["achieved_rate_hz"] == pytest.approx(len(done) / span_s)
    assert load["achieved_rate_hz"] == pytest.approx(result["throughput_ips"])
    # latency counts from the scheduled arrival: p50 of end - arrival
    lat = np.sort((done[:, 2] - done[:, 0]) / 1e6)
    assert result["latency_ms"]["p50"] == pytest.approx(lat[int(np.ceil(0.5 * len(lat))) - 1], abs=1e-3)


def test_10ms_model_at_30_fps_holds_the_rate_with_no_late_frame(agent_factory, push, tmp_path):
    agent = agent_factory(task=TASK)
    result, rd, _ = run(agent, push, tmp_path, {"sleep_ms": 10}, {"rate_hz": 30.0}, 10.0)
    load = result["load"]
    assert load["pattern"] == "rate" and load["rate_hz"] == 30.0
    assert load["deadline_ms"] == pytest.approx(33.333, abs=1e-3)
    assert load["frames"] == 300 and load["completed"] == 300
    assert load["achieved_rate_hz"] == pytest.approx(30.0, abs=0.3)
    assert load["late"] == 0 and load["dropped"] == 0 and load["max_consecutive_misses"] == 0
    # 10 ms of every 33.3 ms: 70% idle (a sleep overshoots by ~0.1 ms: 69.5%)
    assert load["idle_share"] == pytest.approx(0.70, abs=0.02)
    frames = load_arrivals(rd)
    check_against_frames(load, frames, result)
    # iterations.npy keeps its layout: the measured rows are the frames that ran
    it = load_iterations(rd)
    measured = it[it[:, 2] == 1]
    assert np.array_equal(measured[:, :2], frames[:, 1:3])
    # every frame started on time: idle was slept, not run ahead of the schedule
    delay_ms = (frames[:, 1] - frames[:, 0]) / 1e6
    assert delay_ms.min() >= 0 and load["queue_delay_ms"]["p50"] < 1.0


def test_40ms_model_at_30_fps_drops_frames_and_says_the_achieved_rate(agent_factory, push, tmp_path):
    agent = agent_factory(task=TASK)
    result, rd, events = run(agent, push, tmp_path, {"sleep_ms": 40}, {"rate_hz": 30.0}, 3.0)
    load = result["load"]
    frames = load_arrivals(rd)
    check_against_frames(load, frames, result)
    assert load["frames"] == 90 and load["late_policy"] == "drop"
    # busy back to back at 40 ms: 25 FPS, the rest dropped (one in six)
    assert load["achieved_rate_hz"] == pytest.approx(25.0, abs=1.0)
    assert load["dropped"] == pytest.approx(15, abs=3)
    # every frame that ran waited for the one before it and finished past its 33 ms deadline
    assert load["late"] >= load["completed"] - 2 and load["miss_rate"] > 0.9
    assert load["max_consecutive_misses"] >= 80
    # the camera keeps the newest frame: queue delay stays under one frame interval
    assert load["queue_delay_ms"]["max"] < 34.0
    # the terminal summary states the same counts
    from controller.report.terminal import render

    text = render(result)
    assert f"{load['late']:,} late + {load['dropped']:,} dropped of 90 frames" in text
    assert f"achieved {load['achieved_rate_hz']:.2f}/s" in text
    # the series' load panel holds the same frames, binned: a report from the result alone draws it
    panel = result["series"]["load"]
    assert sum(panel["misses"]) == load["late"] + load["dropped"]
    assert sum(panel["achieved_hz"]) * panel["resolution_s"] == pytest.approx(load["completed"])
    assert panel["target_hz"] == 30.0 and len(panel["t_s"]) == 3
    from controller.report.html import render_html

    page = render_html(result)  # no run files
    assert "<h2>Load</h2>" in page and "achieved rate against target" in page


def test_40ms_model_at_30_fps_with_a_queue_lets_the_queue_delay_grow(agent_factory, push, tmp_path):
    agent = agent_factory(task=TASK)
    result, rd, _ = run(agent, push, tmp_path, {"sleep_ms": 40}, {"rate_hz": 30.0, "late": "queue"}, 2.0)
    load = result["load"]
    frames = load_arrivals(rd)
    check_against_frames(load, frames, result)
    assert load["dropped"] == 0 and load["completed"] == 60  # every frame ran, in order
    delay = (frames[:, 1] - frames[:, 0]) / 1e6
    # 40 ms of work per 33.3 ms frame: the queue grows ~6.7 ms a frame
    slope = np.polyfit(np.arange(len(delay)), delay, 1)[0]
    assert slope == pytest.approx(6.67, abs=1.0)
    assert load["queue_delay_ms"]["max"] > 300 and load["achieved_rate_hz"] == pytest.approx(25.0, abs=1.0)


def test_poisson_run_records_seeded_arrivals(agent_factory, push, tmp_path):
    agent = agent_factory(task=TASK)
    load_spec = {"poisson_hz": 50.0, "seed": 3}
    result, rd, _ = run(agent, push, tmp_path, {"sleep_ms": 1}, load_spec, 2.0)
    frames = load_arrivals(rd)
    expect, _ = arrivals(LoadSpec(**load_spec), len(frames), origin=0)
    # the arrivals are the seeded schedule's, from the phase start: never moved by completions
    assert np.array_equal(frames[:, 0] - frames[0, 0], expect - expect[0])
    assert result["load"]["pattern"] == "poisson" and result["load"]["dropped"] == 0
