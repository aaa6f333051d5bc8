"""fleet run --labgrid: a real `labgrid-coordinator` on loopback, places and
tags made with `labgrid-client`. Boards are places (agent address from the
edgebench_agent tag); the plan's tag selector becomes reservations; a place
another client holds is waited for, then skipped with the reason; every
place edgebench took is released at the end, and after Ctrl-C.

labgrid lives in .venv-labgrid (make labgrid): its pyserial-labgrid replaces
pyserial's `serial`; edgebench runs from there as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, spawn_agent, wait_until

LGBIN = ROOT / ".venv-labgrid" / "bin"
pytestmark = pytest.mark.skipif(
    not (LGBIN / "labgrid-coordinator").exists(), reason=".venv-labgrid not built (make labgrid)"
)
FIX = ROOT / "tests" / "fixtures"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    addr = f"127.0.0.1:{_port()}"
    log = open(tmp_path / "coordinator.log", "wb")
    coord = subprocess.Popen(
        [str(LGBIN / "labgrid-coordinator"), "-l", addr], cwd=tmp_path, stdout=log, stderr=log
    )
    env = {**os.environ, "LG_COORDINATOR": addr, "LG_USERNAME": "edgebench-ci"}

    def client(*args: str, user: str | None = None) -> str:
        e = {**env, **({"LG_USERNAME": user} if user else {})}
        r = subprocess.run([str(LGBIN / "labgrid-client"), "-x", addr, *args], env=e, capture_output=True,
                           text=True, timeout=30)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return r.stdout

    def answers() -> bool:  # the coordinator is up; if it died, stop waiting
        cmd = [str(LGBIN / "labgrid-client"), "-x", addr, "places"]
        return subprocess.run(cmd, env=env, capture_output=True, timeout=30).returncode == 0 or (
            coord.poll() is not None
        )

    assert wait_until(answers, timeout=30, step=0.2) and coord.poll() is None, (
        "the coordinator never answered"
    )
    agents = []
    for name, tree, soc in (
        ("p-nx", "orin-nx", "orin"),
        ("p-nano", "orin-nano", "orin"),
        ("p-imx", "imx8mp", "imx"),
    ):
        ap = spawn_agent(tmp_path / f"state-{name}", "--sysfs-root", str(FIX / tree), "--profile", tree)
        agents.append(ap)
        client("-p", name, "create")
        client("-p", name, "set-tags", f"soc={soc}", f"edgebench_agent={ap.address}")
    yield addr, client, env
    for ap in agents:
        ap.stop()
    coord.terminate()
    coord.wait(30)
    log.close()


def _acquired_by(client, place: str) -> str:
    line = next(x for x in client("-p", place, "show").splitlines() if x.strip().startswith("acquired:"))
    return line.split(":", 1)[1].strip()


def _plan(tmp_path: Path, model: Path, duration: str) -> Path:
    (tmp_path / "cls.onnx").write_bytes(model.read_bytes())
    p = tmp_path / "plan.yaml"
    p.write_text(
        "jobs:\n"
        "  - name: orin\n    models: [cls.onnx]\n    boards: {tags: {soc: orin}}\n"
        f"    options: {{duration: {duration}, warmup: 0, min_iterations: 5, no_telemetry: true}}\n"
        "  - name: imx\n    models: [cls.onnx]\n    boards: {names: [p-imx]}\n"
        "    options: {duration: 0.3, warmup: 0, min_iterations: 5, no_telemetry: true}\n"
    )
    return p


def _edgebench(args: list[str], env: dict, **kw) -> subprocess.Popen:
    env = {**env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([str(LGBIN / "edgebench"), *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)  # fmt: skip


def test_plan_through_labgrid_skips_a_held_place_and_releases_all(lab, tmp_path, tiny_onnx_model):
    addr, client, env = lab
    client("-p", "p-nano", "acquire", user="alice")  # another client holds one place first
    plan = _plan(tmp_path, tiny_onnx_model, "0.3")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    t0 = time.monotonic()
    proc = _edgebench(["fleet", "run", str(plan), "--labgrid", addr, "--reserve-timeout", "3", "--db", db,
                       "--json", str(tmp_path / "out.json"), "--live", "lines"], env)  # fmt: skip
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    jobs = {(j["job"], j["board"]): j for j in json.loads((tmp_path / "out.json").read_text())["jobs"]}
    assert set(jobs) == {("orin", "p-nx"), ("orin", "p-nano"), ("imx", "p-imx")}
    assert jobs[("orin", "p-nx")]["status"] == "passed" and jobs[("imx", "p-imx")]["status"] == "passed"
    held = jobs[("orin", "p-nano")]
    assert held["status"] == "skipped" and held["run_id"] is None
    assert "held by" in held["reason"] and "alice" in held["reason"] and "waited 3 s" in held["reason"]
    assert time.monotonic() - t0 >= 3  # it waited the reserve timeout before skipping
    assert _acquired_by(client, "p-nx") == "None" and _acquired_by(client, "p-imx") == "None"
    assert _acquired_by(client, "p-nano").endswith("/alice")  # alice's hold untouched
    assert "Reservation" not in client("reservations")  # edgebench's reservations are gone too
    # status from the places: every board, who holds it
    proc = _edgebench(["fleet", "status", "--labgrid", addr, "--json", str(tmp_path / "s.json")], env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    rows = {r["board"]: r for r in json.loads((tmp_path / "s.json").read_text())}
    assert set(rows) == {"p-nx", "p-nano", "p-imx"} and all(r["reachable"] for r in rows.values())
    assert rows["p-nano"]["labgrid_acquired"].endswith("/alice") and rows["p-nx"]["labgrid_acquired"] is None
    assert rows["p-imx"]["profile"] == "imx8mp"


def test_ctrl_c_releases_the_places_it_holds(lab, tmp_path, tiny_onnx_model):
    addr, client, env = lab
    plan = _plan(tmp_path, tiny_onnx_model, "30s")
    proc = _edgebench(["fleet", "run", str(plan), "--labgrid", addr, "--db", f"sqlite:///{tmp_path / 'r.db'}",
                       "--live", "lines"], env)  # fmt: skip
    ours = lambda: all(_acquired_by(client, p).endswith("/edgebench-ci") for p in ("p-nx", "p-nano"))  # noqa: E731
    if not wait_until(ours, timeout=60, step=0.2):
        proc.kill()
        pytest.fail("edgebench never acquired the places: " + proc.communicate()[0])
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "edgebench fleet resume" in out
    for p in ("p-nx", "p-nano", "p-imx"):
        assert _acquired_by(client, p) == "None", p
    assert "Reservation" not in client("reservations")


def test_a_place_names_its_token_file_and_the_fleet_authenticates(lab, tmp_path, tiny_onnx_model):
    """An agent that requires a token, reached through a place: the tag
    edgebench_token_file names the secret; without it the item cannot run."""
    addr, client, env = lab
    secret = "s3cret-" + os.urandom(4).hex()
    tf = tmp_path / "token"
    tf.write_text(secret + "\n")
    ap = spawn_agent(tmp_path / "state-tok", "--token-file", str(tf), token=secret)
    try:
        client("-p", "p-tok", "create")
        client("-p", "p-tok", "set-tags", "soc=tok", f"edgebench_agent={ap.address}")
        (tmp_path / "cls.onnx").write_bytes(tiny_onnx_model.read_bytes())
        plan = tmp_path / "plan.yaml"
        plan.write_text(
            "jobs:\n  - name: tok\n    models: [cls.onnx]\n    boards: {names: [p-tok]}\n"
            "    options: {duration: 0.3, warmup: 0, min_iterations: 5, no_telemetry: true}\n"
        )
        db = f"sqlite:///{tmp_path / 'r.db'}"

        def run(name: str) -> dict:
            out = tmp_path / f"{name}.json"
            proc = _edgebench(["fleet", "run", str(plan), "--labgrid", addr, "--db", db, "--json", str(out),
                               "--live", "lines"], env)  # fmt: skip
            text, _ = proc.communicate(timeout=120)
            assert out.exists(), text
            return {"rc": proc.returncode, "job": json.loads(out.read_text())["jobs"][0], "out": text}

        before = run("no-tag")  # no token: the agent refuses, the item does not pass
        assert before["rc"] == 1 and before["job"]["status"] != "passed", before
        client("-p", "p-tok", "set-tags", "soc=tok", f"edgebench_agent={ap.address}",
               f"edgebench_token_file={tf}")  # fmt: skip
        after = run("tag")
        assert after["rc"] == 0 and after["job"]["status"] == "passed", after
    finally:
        ap.stop()
