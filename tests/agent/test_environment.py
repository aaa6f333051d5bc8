"""The environment that skews numbers (agent/environment): read per board and
release from the fixture trees, "unknown" where files are missing, busy
processes named from psutil on the live machine, and --pin-clocks pinning and
restoring writable copies of the trees: after the run, after a SIGKILLed
worker, and at the start of an agent that was killed mid-run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import spawn_agent, wait_until

from agent.environment import pin, procs
from agent.environment.probe import probe
from agent.profiles import resolve
from agent.rootfs import RootFS
from controller.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAST = ["--warmup", "0", "--duration", "0.3", "--min-iterations", "5", "--no-telemetry", "--quiet"]


def _probe(tree: Path | str) -> dict:
    root = RootFS(tree)
    return probe(root, resolve(root, "auto"))


@pytest.mark.parametrize("board", ["agx-orin", "agx-orin-r36", "orin-nano", "jetson-nano"])
def test_jetson_trees_warn_governor_gpu_devfreq_and_unlocked_clocks(board):
    env = _probe(FIXTURES / board)
    w = "\n".join(env["warnings"])
    assert "CPU frequency governor schedutil" in w and "not performance" in w
    assert "gpu devfreq governor nvhost_podgov scales" in w
    assert "Jetson clocks not locked" in w
    assert env["jetson_clocks"]["locked"] is False
    assert env["devfreq"]["gpu"]["governor"] == "nvhost_podgov"
    # the GPU devfreq directory changed name between releases; the domain did not
    assert env["devfreq"]["gpu"]["device"] in ("17000000.ga10b", "17000000.gpu", "57000000.gpu")


def test_nvpmodel_mode_swap_and_the_boards_without_findings():
    orin = _probe(FIXTURES / "agx-orin")
    assert orin["nvpmodel"]["id"] == 0 and "nvpmodel mode 0 (MAXN)" in "\n".join(orin["warnings"])
    assert orin["swap"] == {"total_bytes": 32167520 * 1024, "used_bytes": 0}
    nano = _probe(FIXTURES / "orin-nano")
    assert nano["swap"]["used_bytes"] == 256000 * 1024
    assert any(w.startswith("swap in use: 250 MiB") for w in nano["warnings"])
    assert _probe(FIXTURES / "am62a")["warnings"] == []  # performance governor, no devfreq, no swap lines
    x86 = _probe(FIXTURES / "x86")
    assert x86["warnings"][0].startswith("CPU frequency governor powersave on policy0")
    assert "jetson_clocks" not in x86 and x86["swap"] == "unknown"


def test_an_empty_root_is_unknown_never_a_crash(tmp_path):
    env = _probe(tmp_path)
    assert env["warnings"] == []
    assert env["cpu_governors"] == env["swap"] == env["thermal"] == "unknown"


def _copy(board: str, tmp_path: Path) -> Path:
    dst = tmp_path / board
    shutil.copytree(FIXTURES / board, dst, symlinks=True)
    return dst


def test_a_start_near_a_thermal_trip_is_said(tmp_path):
    tree = _copy("agx-orin", tmp_path)
    zone = tree / "sys/devices/virtual/thermal/thermal_zone0"
    trip = int((zone / "trip_point_0_temp").read_text()) / 1000
    (zone / "temp").write_text(f"{int((trip - 4.5) * 1000)}\n")
    env = _probe(tree)
    near = [w for w in env["warnings"] if w.startswith("start near a thermal trip")]
    want = f"CPU-therm at {trip - 4.5:.1f} C, 4.5 C below its passive trip {trip:.1f} C"
    assert near == [f"start near a thermal trip: {want}"]


@pytest.mark.serial  # a spinning process's CPU share against the wall clock: run alone (Makefile)
def test_a_busy_process_during_the_span_is_named():
    import os

    import psutil

    start = procs.Snapshot()
    spin = "import time\nt = time.time() + 60\nwhile time.time() < t: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    try:
        p = psutil.Process(busy.pid)
        _wait_for(lambda: sum(p.cpu_times()[:2]) > 0.5, what="the busy process to burn 0.5 s of CPU")
        end = procs.Snapshot()
        # the agent's own descendants (its worker) are never "other processes"
        assert busy.pid in procs.own_pids([])
    finally:
        busy.kill()
        busy.wait()
    found = procs.busy_others(start, end, {os.getpid()})  # our child is "another process" here
    mine = [e for e in found["top"] if e["pid"] == busy.pid]
    assert found["source"] == "psutil" and mine and mine[0]["cpu_pct"] > procs.THRESHOLD_PCT
    assert procs.warning(found).startswith("other processes above 5% CPU during the measured phase: ")


def _values(tree: Path) -> dict[str, str]:
    out = {}
    for f in ("scaling_governor", "scaling_min_freq"):
        for p in sorted((tree / "sys/devices/system/cpu/cpufreq").glob(f"policy*/{f}")):
            out[str(p.relative_to(tree))] = p.read_text().strip()
    for p in sorted((tree / "sys/devices/platform").glob("**/devfreq/*/min_freq")):
        out[str(p.relative_to(tree))] = p.read_text().strip()
    return out


def test_pin_journals_first_then_restore_puts_every_value_back(tmp_path):
    tree = _copy("agx-orin", tmp_path)
    before = _values(tree)
    root, state = RootFS(tree), tmp_path / "state"
    state.mkdir()
    doc = pin.pin(root, resolve(root, "auto"), state, "run-1")
    names = {e["name"] for e in doc["pinned"]}
    assert {"policy0.governor", "policy0.min_khz", "gpu.min_hz"} <= names and doc["errors"] == []
    journal = json.loads((state / pin.JOURNAL).read_text())
    assert journal["run_id"] == "run-1" and len(journal["entries"]) == len(doc["pinned"])
    env = _probe(tree)  # pinned: governors performance, Jetson clocks locked
    assert env["jetson_clocks"]["locked"] is True and not any("governor" in w for w in env["warnings"])
    back = pin.restore(root, state)
    assert back["errors"] == [] and not (state / pin.JOURNAL).exists()
    assert _values(tree) == before
    assert pin.restore(root, state) is None  # nothing left to put back


def _wait_for(pred, timeout: float = 60.0, what: str = "condition"):
    """wait_until that fails saying what it waited for."""
    v = wait_until(pred, timeout, step=0.05)
    assert v, f"timed out waiting for {what}"
    return v


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_pinned_run_says_what_it_pinned_and_restores_it(cli_env, tiny_onnx_model, capsys):
    tree = _copy("orin-nx", cli_env)
    before = _values(tree)
    ap = spawn_agent(cli_env / "state", "--sysfs-root", str(tree))
    try:
        out = cli_env / "r.json"
        rc = main(
            ["bench", "--agent", ap.address, str(tiny_onnx_model), *FAST, "--pin-clocks", "--json", str(out)]
        )
        assert rc == 0, capsys.readouterr()
        doc = json.loads(out.read_text())
    finally:
        ap.stop()
    pinned = doc["pinned_clocks"]
    assert pinned["restored"] is True and pinned["errors"] == []
    assert {e["to"] for e in pinned["pinned"] if e["name"].endswith(".governor")} == {"performance"}
    # the environment was read after pinning: nothing scales during the run
    assert doc["environment"]["jetson_clocks"]["locked"] is True
    busy = doc["environment"]["other_processes"]  # psutil over the live machine, around the measured phase
    assert busy["source"] == "psutil" and busy["span_s"] > 0 and isinstance(busy["top"], list)
    assert "pinned    " in capsys.readouterr().out
    assert _values(tree) == before and not (cli_env / "state" / pin.JOURNAL).exists()


def test_clocks_go_back_after_a_killed_worker_and_after_a_killed_agent(cli_env, tiny_onnx_model, capsys):
    import grpc  # noqa: F401 - the client below needs it; fail early if missing

    from agent.spec import RunSpec
    from controller.client import AgentClient

    tree = _copy("orin-nx", cli_env)
    before = _values(tree)
    state = cli_env / "state"
    ap = spawn_agent(state, "--sysfs-root", str(tree))
    journal = state / pin.JOURNAL
    try:
        with AgentClient(ap.address) as client:
            sha = client.push(tiny_onnx_model)
            spec = RunSpec(kind="bench", model_sha256=sha, model_name="tiny.onnx", warmup_s=0.0,
                           duration_s=60.0, telemetry=False, pin_clocks=True)  # fmt: skip
            # 1. the worker SIGKILLed mid-run: the agent restores as the run ends
            run_id = client.start_run(spec)
            state_json = state / "runs" / run_id / "state.json"
            pid = _wait_for(lambda: json.loads(state_json.read_text()).get("pid"), what="worker pid")
            _wait_for(lambda: journal.exists() and _values(tree) != before, what="pinned clocks")
            subprocess.run(["kill", "-9", str(pid)], check=True)
            rec = _wait_for(lambda: (r := client.get_run(run_id))["status"] == "failed" and r, what="run end")
            assert "SIGKILL" in rec["result"]["error"]
            assert rec["result"]["pinned_clocks"]["restored"] is True
            assert _values(tree) == before and not journal.exists()
            # 2. the agent itself SIGKILLed mid-run: the next agent start restores
            client.start_run(spec)
            _wait_for(lambda: journal.exists() and _values(tree) != before, what="pinned clocks again")
        ap.kill()
        assert journal.exists() and _values(tree) != before
    finally:
        ap.stop()
    ap2 = spawn_agent(state, "--sysfs-root", str(tree))
    try:
        assert _values(tree) == before and not journal.exists()
    finally:
        ap2.stop()
