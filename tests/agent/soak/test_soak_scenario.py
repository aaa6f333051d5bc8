"""Soak through the real agent on a board that throttles for real: a fixture
sysfs tree whose temperatures and GPU clock are rewritten over time
(tests/scenario/thermal.py), and at a known moment real CPU contention on the
worker's core. The real sampler, journal, worker and analysis judge it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
from conftest import wait_until
from scenario.thermal import CpuContention, ThermalBoard, online_zones, write_in_place

from agent.rpc.edgebench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.serial  # timing against the wall clock: run alone (Makefile)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "agx-orin"
GPU_FREQ = "sys/devices/platform/17000000.ga10b/devfreq/17000000.ga10b/cur_freq"
FROM_HZ, TO_HZ = 1_300_500_000, 816_000_000  # two real ga10b OPPs


@pytest.fixture(scope="module")
def heavy_model(tmp_path_factory) -> Path:
    """~1-3 ms per inference on one core: a few 512x512 MatMul layers."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    nodes, inits, prev = [], [], "x"
    for i in range(4):
        inits.append(
            numpy_helper.from_array(rng.standard_normal((512, 512)).astype(np.float32) / 22, f"w{i}")
        )
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"]))
        prev = f"r{i}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes, "heavy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [32, 512])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("soakmodel") / "heavy.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture
def board_root(tmp_path) -> Path:
    root = tmp_path / "board"
    shutil.copytree(FIXTURE, root, symlinks=True)
    return root


def soak_spec(sha: str, duration_s: float, window_s: float, **soak) -> str:
    return json.dumps(
        {"kind": "soak", "model_sha256": sha, "model_name": "heavy", "threads": 1, "warmup_s": 0.5,
         "duration_s": duration_s, "min_iterations": 1, "placement": False, "telemetry_rate_hz": 10.0,
         "soak": {"window_s": window_s, **soak}}
    )  # fmt: skip


def run_dir(state_dir: Path, run_id: str) -> Path:
    return state_dir / "runs" / run_id


def worker_pid(state_dir: Path, run_id: str, timeout: float = 30.0) -> int:
    state = run_dir(state_dir, run_id) / "state.json"
    pid = wait_until(lambda: json.loads(state.read_text()).get("pid"), timeout, step=0.05)
    assert pid, "worker never started"
    return int(pid)


def test_throttle_is_found_at_the_right_time_and_attributed_to_the_gpu(
    agent_factory, push, heavy_model, board_root
):
    agent = agent_factory(sysfs_root=board_root, profile="agx-orin")
    sha = push(agent.stub, heavy_model)
    core = max(os.sched_getaffinity(0))
    contention = CpuContention({core}, procs=2)
    board = ThermalBoard(board_root, throttle_at_s=15.0, clock_file=board_root / GPU_FREQ,
                         from_hz=FROM_HZ, to_hz=TO_HZ, contention=contention)  # fmt: skip
    run_id = agent.stub.StartRun(pb.StartRunRequest(spec_json=soak_spec(sha, 30.0, 1.5))).run_id
    windows = []
    try:
        for ev in agent.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120):
            payload = json.loads(ev.payload_json)
            if ev.kind == "phase" and payload["phase"] == "warmup":
                contention.pin(worker_pid(agent.state_dir, run_id))  # cold figures on the same core
            if ev.kind == "phase" and payload["phase"] == "measure":
                board.start()
            if ev.kind == "window":
                windows.append(payload)
            if ev.kind == "result":
                break
    finally:
        board.stop()
    rec = agent.stub.GetRun(pb.GetRunRequest(run_id=run_id))
    result = json.loads(rec.result_json)
    assert result["status"] == "completed", result.get("error")
    soak = result["soak"]
    throttle_t = (board.t_throttle_ns - result["t0_ns"]) / 1e9

    # every streamed window is in the result, once
    assert [w["t_s"] for w in soak["windows"]] == pytest.approx([w["t_s"] for w in windows])
    assert len(windows) >= 18

    # the drop is found at the right time, on the right domain
    gpu_events = [e for e in soak["throttle_events"] if e["domain"] == "gpu"]
    assert len(gpu_events) == 1
    ev = gpu_events[0]
    assert (ev["from_hz"], ev["to_hz"]) == (FROM_HZ, TO_HZ)
    assert abs(ev["t_s"] - throttle_t) <= 0.25  # one 10 Hz sample
    assert soak["time_to_throttle_s"] == ev["t_s"]
    assert ev["zone"] == "tj" and ev["temp_c"] == pytest.approx(board.temps_at_throttle["tj-therm"], abs=1.5)
    # (other load on a shared CI core may dip a window before it: that one is "unexplained")
    by_clock = [a for a in soak["attributions"] if a["cause"] == "clock"]
    assert by_clock and all(a["domain"] == "gpu" for a in by_clock)
    first = by_clock[0]
    # the first window the clock explains is the one the throttle fell in (or the next, at its very end)
    assert first["t_s"] - 1.5 <= throttle_t <= first["t_s"] + 1.5 + 0.05
    assert first["event_t_s"] == ev["t_s"]
    assert all(a["t_s"] + 1.5 >= throttle_t for a in by_clock)

    # sustained_ratio and stability reflect it: two busy processes take ~2/3 of the core
    before = [w["throughput_ips"] for w in soak["windows"] if w["t_s"] + 1.5 < throttle_t]
    after = [w["throughput_ips"] for w in soak["windows"] if w["t_s"] > throttle_t + 1.0 and w["dur_s"] > 1.0]
    measured = (sum(after) / len(after)) / (sum(before) / len(before))
    assert measured < 0.75
    assert soak["sustained_ratio"] < 0.75
    # ... and is the definition over these windows: the last 20% of the
    # run against its first 10% (by window midpoint, weighted by window length)
    ws = soak["windows"]
    start, end = ws[0]["t_s"], ws[-1]["t_s"] + ws[-1]["dur_s"]

    def rate(span: list[dict]) -> float:
        return sum(w["throughput_ips"] * w["dur_s"] for w in span) / sum(w["dur_s"] for w in span)

    mid = [(w["t_s"] + w["dur_s"] / 2, w) for w in ws]
    cold = rate([w for m, w in mid if m - start <= 0.1 * (end - start)])
    sustained = rate([w for m, w in mid if end - m <= 0.2 * (end - start)])
    assert soak["cold_throughput_ips"] == pytest.approx(cold, rel=2e-3)
    assert soak["sustained_throughput_ips"] == pytest.approx(sustained, rel=2e-3)
    assert soak["sustained_ratio"] == pytest.approx(sustained / cold, rel=2e-3)
    assert soak["stability"] <= soak["sustained_ratio"] + 0.05
    assert soak["verdict"] == "throttled"
    assert "when gpu clock dropped 1300→816 MHz with tj at" in soak["summary"]
    # windows carry the telemetry the sampler saw
    w0 = soak["windows"][0]
    assert w0["clocks_hz"]["gpu"]["min"] == FROM_HZ and "tj" in w0["temps_c"]


def test_killing_the_agent_mid_soak_loses_no_journaled_window(
    agent_process, push, heavy_model, board_root, tmp_path
):
    state = tmp_path / "state"
    ap = agent_process("--sysfs-root", str(board_root), "--profile", "agx-orin", state_dir=state)
    sha = push(ap.stub, heavy_model)
    run_id = ap.stub.StartRun(pb.StartRunRequest(spec_json=soak_spec(sha, 60.0, 0.5))).run_id
    seen = []
    for ev in ap.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=60):
        if ev.kind == "window":
            seen.append((ev.seq, json.loads(ev.payload_json)))
            if len(seen) == 4:
                break
    pid = worker_pid(state, run_id)
    ap.kill(signal.SIGKILL)
    # the orphaned worker must not go on burning the board
    if not wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=20, step=0.05):
        os.kill(pid, signal.SIGKILL)
        pytest.fail("worker outlived its agent")

    journal = [
        json.loads(line) for line in (run_dir(state, run_id) / "journal.jsonl").read_text().splitlines()
    ]
    journaled = [e for e in journal if e["kind"] == "window"]
    assert len(journaled) >= 4

    ap2 = agent_process("--sysfs-root", str(board_root), "--profile", "agx-orin", state_dir=state)
    rec = ap2.stub.GetRun(pb.GetRunRequest(run_id=run_id))
    assert rec.status == "interrupted"
    result = json.loads(rec.result_json)
    got = result["soak"]["windows"]
    # every window the controller saw, and every one the journal holds, in order, once
    assert [w["t_s"] for w in got] == [e["payload"]["t_s"] for e in journaled]
    assert [p["t_s"] for _, p in seen] == [w["t_s"] for w in got[:4]]
    # a watcher that had seq N resumes after it and gets each remaining window once
    last_seq = seen[-1][0]
    rest = [e for e in ap2.stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_seq=last_seq), timeout=30)]
    rest_windows = [json.loads(e.payload_json)["t_s"] for e in rest if e.kind == "window"]
    assert rest_windows == [w["t_s"] for w in got[4:]]
    assert [e.seq for e in rest] == list(range(last_seq + 1, last_seq + 1 + len(rest)))


def test_edgebench_soak_on_the_throttling_board_reports_attributes_and_writes_html(
    agent_factory, heavy_model, board_root, tmp_path, capsys, monkeypatch
):
    from test_soak_cli import edgebench

    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'home' / 'results.db'}")
    agent = agent_factory(sysfs_root=board_root, profile="agx-orin")
    contention = CpuContention({max(os.sched_getaffinity(0))}, procs=2)
    board = ThermalBoard(board_root, throttle_at_s=8.0, clock_file=board_root / GPU_FREQ,
                         from_hz=FROM_HZ, to_hz=TO_HZ, contention=contention)  # fmt: skip

    def drive() -> None:
        """Play the board: pin the worker when the run starts, heat and throttle it from its measure phase."""
        runs = agent.state_dir / "runs"
        assert wait_until(lambda: runs.exists() and any(runs.iterdir()), timeout=60, step=0.05)
        run_id = next(runs.iterdir()).name
        for ev in agent.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=120):
            phase = json.loads(ev.payload_json).get("phase") if ev.kind == "phase" else None
            if phase == "warmup":
                contention.pin(worker_pid(agent.state_dir, run_id))
            if phase == "measure":
                board.start()
                return

    t = threading.Thread(target=drive, daemon=True)
    t.start()
    html, out_json = tmp_path / "report.html", tmp_path / "soak.json"
    try:
        rc = edgebench(["soak", str(heavy_model), "--agent", agent.address, "--duration", "18s",
                        "--window", "1s", "--threads", "1", "--warmup", "0.5",
                        "--html", str(html), "--json", str(out_json)])  # fmt: skip
    finally:
        t.join(timeout=5)
        board.stop()
    out = capsys.readouterr().out
    assert rc == 0
    soak = json.loads(out_json.read_text())["soak"]
    assert soak["verdict"] == "throttled" and soak["time_to_throttle_s"] is not None
    # the one sentence, as printed
    sentence = soak["summary"]
    assert sentence in out.splitlines()
    assert "when gpu clock dropped 1300→816 MHz with tj at" in sentence
    page = html.read_text()
    assert sentence in page and page.count("data:image/png;base64,") >= 1
    assert "Throttle events" in page


def test_start_cold_waits_at_idle_before_the_soak_and_is_bounded(
    agent_factory, push, tiny_onnx_model, board_root
):
    agent = agent_factory(sysfs_root=board_root, profile="agx-orin")
    sha = push(agent.stub, tiny_onnx_model)
    # the board is still cooling: tj falls 1 °C every 0.1 s, so it never settles within the bound
    tj = online_zones(board_root)["tj-therm"]
    stop = threading.Event()

    write_in_place(tj, "90000\n")

    def cool() -> None:
        t = 90.0
        while not stop.wait(0.1):
            t -= 1.0
            write_in_place(tj, f"{int(t * 1000)}\n")

    th = threading.Thread(target=cool, daemon=True)
    th.start()
    spec = json.loads(soak_spec(sha, 1.0, 0.5, start_cold=True, start_cold_max_s=1.5))
    try:
        run_id = agent.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id
        events = list(agent.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=60))
    finally:
        stop.set()
        th.join()
    kinds = [e.kind for e in events]
    logs = [json.loads(e.payload_json) for e in events if e.kind == "log"]
    cold = next(m["cold_start"] for m in logs if "cold_start" in m)
    assert cold["settled"] is False and cold["reason"] == "not settled within 1.5 s"
    assert 1.5 <= cold["waited_s"] < 3.0 and cold["start_c"] > cold["end_c"]
    # the wait comes before the worker's first phase
    first_phase = kinds.index("phase")
    assert (
        max(i for i, e in enumerate(events) if e.kind == "log" and "cold_start" in e.payload_json)
        < first_phase
    )
    result = json.loads(agent.stub.GetRun(pb.GetRunRequest(run_id=run_id)).result_json)
    assert result["status"] == "completed" and result["soak"]["cold_start"] == cold
