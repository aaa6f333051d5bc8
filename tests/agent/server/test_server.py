"""Server assembly: gRPC health, the info RPC, one agent per state dir, and the
``edgebench-agent`` command line."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import grpc
import pytest
from conftest import agent_cli
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.errors import BadInput
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.server.app import AgentServer


def test_health_reports_serving_for_the_server_and_the_agent_service(agent):
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(agent.address))
    for service in ("", "edgebench.v1.Agent"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as ei:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND


def test_info_rpc_returns_the_cached_fingerprint(agent):
    first = json.loads(agent.stub.GetInfo(pb.GetInfoRequest()).info_json)
    assert first["schema"] == "edgebench.info/v1" and first["hostname"]
    assert json.loads(agent.stub.GetInfo(pb.GetInfoRequest()).info_json) == first
    assert agent.server.info() is agent.server.info()


def test_start_returns_the_bound_port_and_stop_frees_it(tmp_path):
    s = AgentServer(tmp_path / "s")
    address = s.start()
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    s.stop(0)
    again = AgentServer(tmp_path / "s", listen=address)  # same port and state dir: both free again
    assert again.start() == address
    again.stop(0)


def test_one_agent_per_state_dir(agent, tmp_path):
    with pytest.raises(BadInput, match="in use by another agent"):
        AgentServer(agent.state_dir).start()
    # the first one is unaffected
    assert agent.stub.ListRuns(pb.ListRunsRequest()).runs == []


def test_port_in_use_is_bad_input(agent, tmp_path):
    with pytest.raises(BadInput, match="cannot listen on"):
        AgentServer(tmp_path / "other", listen=agent.address).start()


def test_metrics_endpoint_serves_run_manager_stats(agent_factory):
    import urllib.request

    a = agent_factory(metrics_port=0)
    assert a.server.metrics_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(a.server.metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    assert "edgebench_runs_in_flight 0.0" in text and "edgebench_inferences_total" in text


def test_idle_agent_process_stays_light(agent_process):
    import psutil

    ap = agent_process()
    assert json.loads(ap.stub.GetInfo(pb.GetInfoRequest()).info_json)["schema"] == "edgebench.info/v1"
    ap.stub.ListRuns(pb.ListRunsRequest())
    rss = psutil.Process(ap.proc.pid).memory_info().rss
    maps = open(f"/proc/{ap.proc.pid}/maps").read()
    # runtimes, plotting and SQL stay out of the daemon (the fingerprint probes runtimes in a child)
    for heavy in ("onnxruntime", "ai_edge_litert", "tflite_runtime", "matplotlib", "sqlalchemy"):
        assert heavy not in maps, heavy
    assert rss < 80 * 2**20, rss


def test_cli_info_json(tmp_path):
    r = agent_cli("info", "--sysfs-root", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["schema"] == "edgebench.info/v1" and info["python"]


def test_cli_unknown_profile_and_bad_meter_exit_2(tmp_path):
    for args, message in (
        (["--profile", "no-such-board"], "no-such-board"),
        (["--meter", "fluke:/dev/ttyUSB0"], "unknown meter kind"),
        (["--sysfs-root", str(tmp_path / "absent")], "is not a directory"),
    ):
        r = agent_cli("serve", "--state-dir", str(tmp_path / "s"), *args)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgebench-agent: error: ") and message in lines[0]


def test_cli_requires_a_subcommand():
    r = agent_cli()
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_serve_says_where_metrics_went_when_port_0_picked_one(agent_process):
    board = Path(__file__).resolve().parents[2] / "fixtures" / "orin-nano"
    ap = agent_process("--metrics-port", "0", "--sysfs-root", str(board))
    (line,) = [b for b in ap.banner if b.startswith("metrics on ")]
    url = line.split()[-1]
    assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert b"edgebench_thermal_zone_celsius" in resp.read()
