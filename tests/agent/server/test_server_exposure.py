"""What an agent exposes beyond its gRPC port (issue 13, defect 9): /metrics
binds loopback unless told otherwise, and risky setups are named in one
warning line each when serving starts."""

from __future__ import annotations

import subprocess
import urllib.request

import pytest
from conftest import AGENT_BIN

from agent.errors import BadInput
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.server.app import AgentServer

TOKEN = "tok-exposure"


def test_metrics_stay_on_loopback_when_grpc_listens_on_every_address(agent_factory):
    a = agent_factory(listen="0.0.0.0:0", insecure=True, metrics_port=0)
    assert a.server.metrics_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(a.server.metrics_url, timeout=10) as resp:
        assert b"edgebench_runs_in_flight" in resp.read()


def test_metrics_listen_names_the_address(agent_factory, tmp_path):
    a = agent_factory(metrics_listen="127.0.0.1:0")
    assert a.server.metrics_url.startswith("http://127.0.0.1:")
    assert a.server.warnings == []
    with pytest.raises(BadInput, match="not both"):
        AgentServer(tmp_path / "s", metrics_port=0, metrics_listen="127.0.0.1:0")
    with pytest.raises(BadInput, match=r"bad --metrics-listen 'nope'"):
        AgentServer(tmp_path / "s", metrics_listen="nope")


def test_metrics_port_in_use_is_bad_input_and_frees_the_state_dir(agent_factory, tmp_path):
    a = agent_factory(metrics_port=0)
    port = int(a.server.metrics_url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(BadInput, match="cannot serve /metrics on 127.0.0.1:"):
        AgentServer(tmp_path / "other", metrics_port=port).start()
    again = AgentServer(tmp_path / "other")  # the lock was released
    again.start()
    again.stop(0)


def _warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if " WARNING " in line]


def test_a_token_over_plaintext_off_loopback_is_warned_about_once(agent_process, tmp_path):
    tf = tmp_path / "token"
    tf.write_text(TOKEN)
    ap = agent_process("--listen", "0.0.0.0:0", "--token-file", str(tf), token=TOKEN)
    assert ap.stub.GetInfo(pb.GetInfoRequest(), timeout=30).info_json
    (line,) = _warnings(ap.log())
    assert "bearer token travels in plaintext on 0.0.0.0:0" in line and "--tls-cert" in line
    ap.stop()
    # on loopback nobody else sees the token: no warning
    quiet = agent_process("--token-file", str(tf), state_dir=tmp_path / "quiet", token=TOKEN)
    assert quiet.stub.GetInfo(pb.GetInfoRequest(), timeout=30).info_json
    assert _warnings(quiet.log()) == []


def test_metrics_off_loopback_are_warned_about(agent_process):
    ap = agent_process("--metrics-listen", "0.0.0.0:0")
    (line,) = [b for b in ap.banner if b.startswith("metrics on ")]
    assert line.startswith("metrics on http://0.0.0.0:")
    (warning,) = _warnings(ap.log())
    assert "/metrics on 0.0.0.0:0 has no auth" in warning


def test_cli_metrics_options_exclude_each_other(tmp_path):
    r = subprocess.run(
        [str(AGENT_BIN), "serve", "--state-dir", str(tmp_path / "s"), "--metrics-port", "0",
         "--metrics-listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "not allowed with argument" in line
