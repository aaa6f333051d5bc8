"""The agent as a systemd service: sd_notify over a real datagram socket,
READY once serving, the watchdog that stops when the dispatcher dies, SIGHUP
token rotation on a real `edgebench-agent serve`, agent.yaml, the installer,
and `systemd-analyze verify` on the unit and every drop-in."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.service import config, install, notify
from tests.conftest import AGENT_BIN, ROOT, make_stub, spawn_agent, wait_until

FIXTURES = ROOT / "tests" / "fixtures"
UNIT = ROOT / "systemd" / "edgebench-agent.service"


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A bound AF_UNIX datagram socket standing in for systemd's; NOTIFY_SOCKET names it."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def _messages(sock: socket.socket, seconds: float) -> list[str]:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
    return out


def _until(sock: socket.socket, pred, seconds: float) -> list[str]:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if pred(out[-1]):
            break
    return out


# -- sd_notify ----------------------------------------------------------------
def test_notify_sends_one_datagram_to_the_socket(notify_socket):
    assert notify.notify("READY=1\nSTATUS=hi")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=hi"


def test_notify_reaches_an_abstract_socket(monkeypatch):
    name = f"edgebench-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_without_systemd_is_a_quiet_no(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert notify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify.notify("READY=1") is False  # no listener: no exception either


def test_watchdog_interval_is_half_the_usec_and_only_for_this_pid(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert notify.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert notify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert notify.watchdog_interval() is None


def test_the_watchdog_stops_pinging_when_the_dispatcher_dies(agent, notify_socket):
    server = agent.server
    assert server._serve_thread is not None, "grpc's serving thread was not found: the check would be void"
    dog = notify.Watchdog(0.1, server.alive).start()
    try:
        assert _messages(notify_socket, 0.6).count("WATCHDOG=1") >= 3
        server.runs._queue.put(None)  # the dispatcher's stop sentinel: its thread exits
        for t in server.runs._threads:
            t.join(5)
        assert not server.alive()
        # the first failed check says so once; pings already in flight come before it
        before = _until(notify_socket, lambda m: m.startswith("STATUS=wedged"), 5.0)
        assert before and before[-1].startswith("STATUS=wedged"), before
        pings = dog.pings
        got = _messages(notify_socket, 1.0)  # ten intervals with the dispatcher dead
        assert "WATCHDOG=1" not in got and dog.pings == pings, got
        assert not any(m.startswith("STATUS=") for m in got), got  # said once, not every interval
    finally:
        dog.stop()


def test_the_watchdog_stops_pinging_when_the_grpc_server_stops(agent, notify_socket):
    dog = notify.Watchdog(0.1, agent.server.alive).start()
    try:
        assert "WATCHDOG=1" in _messages(notify_socket, 0.4)
        agent.server._server.stop(0).wait(5)
        agent.server._serve_thread.join(5)
        _messages(notify_socket, 0.3)
        assert "WATCHDOG=1" not in _messages(notify_socket, 1.0)
    finally:
        dog.stop()


def test_serve_sends_ready_once_serving_then_pings_and_stopping(tmp_path, notify_socket):
    env = {"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "400000"}
    ap = spawn_agent(tmp_path / "st", env=env)
    try:
        got = _until(notify_socket, lambda m: m.startswith("READY=1"), 10)
        ready = got[-1]
        assert ready.startswith("READY=1") and f"listening on {ap.address}" in ready
        assert f"MAINPID={ap.proc.pid}" in ready
        # READY means serving: a call answers at once
        assert ap.stub.GetInfo(pb.GetInfoRequest(), timeout=30).info_json
        assert _messages(notify_socket, 1.0).count("WATCHDOG=1") >= 3  # every 0.2 s
        assert ap.stop() == 0
        assert "STOPPING=1" in _messages(notify_socket, 0.5)
    finally:
        if ap.proc.poll() is None:
            ap.proc.kill()


# -- SIGHUP token rotation ----------------------------------------------------
def _code(stub) -> grpc.StatusCode:
    try:
        stub.GetInfo(pb.GetInfoRequest(), timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_sighup_rereads_the_token_file(tmp_path):
    token = tmp_path / "token"
    token.write_text("old-token-1\n")
    ap = spawn_agent(tmp_path / "st", "--token-file", str(token), token="old-token-1")
    try:
        new = make_stub(ap.address, token="new-token-2")
        assert _code(ap.stub) == grpc.StatusCode.OK and _code(new) == grpc.StatusCode.UNAUTHENTICATED
        token.write_text("new-token-2\n")
        ap.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: _code(new) == grpc.StatusCode.OK, timeout=10, step=0.05)
        assert _code(ap.stub) == grpc.StatusCode.UNAUTHENTICATED
        # a broken token file keeps the current token: the agent stays reachable
        token.write_text("")
        ap.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "keeping the old token" in ap.log(), timeout=10, step=0.05)
        assert "is empty" in ap.log()
        assert _code(new) == grpc.StatusCode.OK
        assert ap.proc.poll() is None
    finally:
        ap.stop()


# -- agent.yaml ---------------------------------------------------------------
def _serve_args(*argv: str):
    from agent.cli import _with_config, build_parser

    parser = build_parser()
    argv = ["serve", *argv]
    return _with_config(parser, argv, parser.parse_args(argv))


def test_config_file_values_apply_and_the_command_line_wins(tmp_path):
    f = tmp_path / "agent.yaml"
    f.write_text(
        "listen: '0.0.0.0:50551'\ntoken_file: /etc/edgebench/token\nartifact-quota: 512M\n"
        "keep-runs: 50\nupload-expiry: 2h\nmetrics-port: 9464\nmeter-opt: {baud: 921600}\ninsecure: false\n"
    )
    args = _serve_args("--config", str(f))
    assert (args.listen, args.token_file, args.artifact_quota) == (
        "0.0.0.0:50551",
        "/etc/edgebench/token",
        512 << 20,
    )
    assert (args.keep_runs, args.upload_expiry, args.metrics_port) == (50, 7200.0, 9464)
    assert args.meter_opt == ["baud=921600"] and args.insecure is False
    args = _serve_args(
        "--config", str(f), "--listen", "127.0.0.1:1", "--keep-runs", "3", "--metrics-listen", "[::1]:9"
    )
    assert (args.listen, args.keep_runs, args.artifact_quota) == ("127.0.0.1:1", 3, 512 << 20)
    assert (args.metrics_port, args.metrics_listen) == (
        None,
        "[::1]:9",
    )  # the CLI's choice replaces the file's


@pytest.mark.parametrize(
    "text, line, why",
    [
        ("listen: 127.0.0.1:1\n\nnosuch: 1\n", 3, "unknown key 'nosuch'"),
        ("log-level: info\ntoken: hunter2\n", 2, "secret inline"),
        ("tls-key: |\n  -----BEGIN PRIVATE KEY-----\n  abc\n", 1, "PEM block"),
        ("keep-runs: -1\n", 1, "must not be negative"),
        ("log-level: loud\n", 1, "must be one of"),
        ("listen: [1, 2\n", 2, "not valid YAML"),
    ],
)
def test_a_bad_config_is_one_line_exit_2_and_nothing_stored(tmp_path, text, line, why):
    f = tmp_path / "agent.yaml"
    f.write_text(text)
    state = tmp_path / "st"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [str(AGENT_BIN), "serve", "--config", str(f), "--state-dir", str(state), "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"{f}:{line}:" in r.stderr and why in r.stderr
    assert not state.exists()


def test_a_missing_config_named_on_the_command_line_is_exit_2(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    r = subprocess.run(
        [str(AGENT_BIN), "serve", "--config", missing, "--state-dir", str(tmp_path / "st")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode == 2 and "cannot read config" in r.stderr and r.stderr.count("\n") == 1


def test_a_served_agent_takes_its_options_from_the_file(tmp_path):
    f = tmp_path / "agent.yaml"
    f.write_text("artifact-quota: 3M\nlog-level: warning\n")
    ap = spawn_agent(tmp_path / "st", "--config", str(f))
    try:
        assert ap.stub.StatArtifact(pb.StatArtifactRequest(sha256="a" * 64)).quota_bytes == 3 << 20
    finally:
        ap.stop()
    ap = spawn_agent(tmp_path / "st", "--config", str(f), "--artifact-quota", "5M")
    try:
        assert ap.stub.StatArtifact(pb.StatArtifactRequest(sha256="a" * 64)).quota_bytes == 5 << 20
    finally:
        ap.stop()


# -- installing ---------------------------------------------------------------
def test_install_lays_down_the_unit_dropin_sysusers_and_config(tmp_path, capsys):
    prefix = tmp_path / "root"
    prefix.mkdir()
    assert install.install(str(prefix), "auto", str(FIXTURES / "agx-orin")) == 0
    out = capsys.readouterr().out
    unit = prefix / "etc/systemd/system/edgebench-agent.service"
    dropin = prefix / "etc/systemd/system/edgebench-agent.service.d/jetson.conf"
    sysusers = prefix / "etc/sysusers.d/edgebench.conf"
    conf = prefix / "etc/edgebench/agent.yaml"
    for p in (unit, dropin, sysusers, conf):
        assert p.is_file() and f"wrote {p}" in out
    assert f"ExecStart={install.agent_executable()} serve" in unit.read_text()
    assert "/dev/nvmap" in dropin.read_text()
    assert sysusers.read_text().split("\n")[-2].startswith("u edgebench ")
    # the default config is valid for serve, and an admin's edits survive a reinstall
    from agent.cli import build_parser

    assert config.load(str(conf), build_parser()._serve_parser)["keep_runs"] == 500
    conf.write_text("keep-runs: 7\n")
    assert install.install(str(prefix), "imx8mp", "/") == 0
    out = capsys.readouterr().out
    assert conf.read_text() == "keep-runs: 7\n" and f"kept {conf}" in out
    assert not dropin.exists() and (dropin.parent / "imx8mp.conf").is_file()  # one board's nodes only


@pytest.mark.parametrize(
    "fixture, family", [("imx8mp", "imx8mp"), ("am62a", "am62a"), ("orin-nano", "jetson"), ("x86", None)]
)
def test_install_detects_the_board_family(fixture, family):
    assert install.board_family(str(FIXTURES / fixture)) == family


def test_install_refuses_a_bad_board_in_one_line(tmp_path):
    r = subprocess.run(
        [str(AGENT_BIN), "install", "--systemd", "--prefix", str(tmp_path), "--board", "pi"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode == 2 and "bad --board" in r.stderr and not any(tmp_path.iterdir())


# -- the unit -----------------------------------------------------------------
def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_the_unit_is_what_a_careful_admin_writes():
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["Restart"] == ["on-failure"] and int(d["WatchdogSec"][0]) > 0
    assert d["User"] == ["edgebench"] and d["SupplementaryGroups"] == ["dialout video render"]
    assert d["StateDirectory"] and d["CacheDirectory"]
    assert d["ProtectSystem"] == ["strict"] and d["ProtectHome"] == ["yes"]
    assert d["NoNewPrivileges"] == ["yes"] and d["PrivateTmp"] == ["yes"]
    assert d["DevicePolicy"] == ["closed"] and "PrivateDevices" not in d
    assert {"char-ttyUSB rw", "char-ttyACM rw"} <= set(d["DeviceAllow"])
    assert d["CapabilityBoundingSet"] == [""] and d["SystemCallFilter"][0] == "@system-service"
    assert int(d["LimitNOFILE"][0]) >= 4096
    for family in install.FAMILIES:
        assert _directives((UNIT.parent / f"{UNIT.name}.d" / f"{family}.conf").read_text())["DeviceAllow"]


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _verify(unit_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:"}  # the drop-ins next to the unit load too
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit_dir / "edgebench-agent.service")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize("board", ["none", *install.FAMILIES])
def test_systemd_analyze_verifies_the_installed_unit(tmp_path, board, capsys):
    install.install(str(tmp_path), board, "/")
    unit_dir = tmp_path / "etc/systemd/system"
    r = _verify(unit_dir)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stderr
    # the check can fail: a misspelt key is reported
    unit = unit_dir / "edgebench-agent.service"
    unit.write_text(unit.read_text().replace("WatchdogSec=", "WatchDogSec="))
    assert "WatchDogSec" in _verify(unit_dir).stderr
