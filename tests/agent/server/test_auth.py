"""Auth: bearer token on every RPC, mTLS with a CA made here, and the refusal
to listen on a non-loopback address without either."""

from __future__ import annotations

import subprocess

import grpc
import pytest
from conftest import agent_cli, make_stub, upload_chunks

from agent.errors import BadInput
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.server.app import AgentServer

TOKEN = "tok-3f9a1c"


def _unauthenticated(call) -> str:
    with pytest.raises(grpc.RpcError) as ei:
        call()
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "\n" not in ei.value.details()
    return ei.value.details()


def test_missing_or_wrong_token_is_unauthenticated_on_every_kind_of_rpc(agent_factory):
    a = agent_factory(token=TOKEN)
    cases = ((make_stub(a.address), "missing bearer token"), (make_stub(a.address, "nope"), "invalid"))
    for stub, why in cases:
        assert why in _unauthenticated(lambda s=stub: s.GetInfo(pb.GetInfoRequest()))
        _unauthenticated(lambda s=stub: s.ListRuns(pb.ListRunsRequest()))
        _unauthenticated(lambda s=stub: list(s.WatchRun(pb.WatchRunRequest(run_id="x"))))
        _unauthenticated(
            lambda s=stub: s.Upload(upload_chunks(iter([b"abc"]), "a" * 64, 3, "m.onnx")),
        )
    assert list((a.state_dir / "uploads").iterdir()) == []
    # the right token works
    assert a.stub.GetInfo(pb.GetInfoRequest()).info_json
    assert a.stub.ListRuns(pb.ListRunsRequest()).runs == []


def test_token_file_on_the_cli(tmp_path, agent_process):
    tf = tmp_path / "token"
    tf.write_text(TOKEN + "\n")
    ap = agent_process("--token-file", str(tf), token=TOKEN)
    assert ap.stub.GetInfo(pb.GetInfoRequest()).info_json
    assert "invalid bearer token" in _unauthenticated(
        lambda: make_stub(ap.address, "wrong").GetInfo(pb.GetInfoRequest())
    )
    assert ap.stop() == 0


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)  # fmt: skip


def _make_cert(d, name: str, ca: str, san: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-days", "2",
             "-CAcreateserial", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca")
    _make_ca(d, "otherca")
    _make_cert(d, "server", "ca", "DNS:localhost,IP:127.0.0.1")
    _make_cert(d, "client", "ca", "DNS:client")
    _make_cert(d, "rogue", "otherca", "DNS:rogue")
    return d


def _creds(pki, client: str | None):
    kw = {"root_certificates": (pki / "ca.pem").read_bytes()}
    if client:
        kw["private_key"] = (pki / f"{client}.key").read_bytes()
        kw["certificate_chain"] = (pki / f"{client}.pem").read_bytes()
    return grpc.ssl_channel_credentials(**kw)


def test_mtls_accepts_ca_signed_clients_only(agent_factory, pki):
    a = agent_factory(
        tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"), tls_client_ca=str(pki / "ca.pem")
    )
    ok = make_stub(a.address, credentials=_creds(pki, "client"))
    assert ok.GetInfo(pb.GetInfoRequest(), timeout=10).info_json
    for client in (None, "rogue"):
        stub = make_stub(a.address, credentials=_creds(pki, client))
        with pytest.raises(grpc.RpcError) as ei:
            stub.GetInfo(pb.GetInfoRequest(), timeout=10)
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    # plaintext cannot talk to it at all
    with pytest.raises(grpc.RpcError):
        make_stub(a.address).GetInfo(pb.GetInfoRequest(), timeout=5)


def test_mtls_satisfies_the_non_loopback_rule(tmp_path, pki):
    s = AgentServer(
        tmp_path / "s",
        listen="0.0.0.0:0",
        tls_cert=str(pki / "server.pem"),
        tls_key=str(pki / "server.key"),
        tls_client_ca=str(pki / "ca.pem"),
    )
    port = int(s.start().rsplit(":", 1)[1])
    try:
        stub = make_stub(f"127.0.0.1:{port}", credentials=_creds(pki, "client"))
        assert stub.GetInfo(pb.GetInfoRequest(), timeout=10).info_json
    finally:
        s.stop(0)


def test_non_loopback_listen_without_auth_is_refused(tmp_path):
    with pytest.raises(BadInput, match="refusing to listen on non-loopback"):
        AgentServer(tmp_path / "s", listen="0.0.0.0:0")
    # server TLS alone authenticates nobody
    with pytest.raises(BadInput, match="non-loopback"):
        AgentServer(tmp_path / "s", listen="192.0.2.1:0", tls_cert="c", tls_key="k")
    AgentServer(tmp_path / "s", listen="0.0.0.0:0", token=TOKEN)  # allowed
    AgentServer(tmp_path / "s", listen="0.0.0.0:0", insecure=True)  # allowed
    AgentServer(tmp_path / "s", listen="[::1]:0")  # loopback v6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--listen", "0.0.0.0:0"], "refusing to listen on non-loopback 0.0.0.0:0"),
        (["--listen", "nonsense"], "bad --listen"),
        (["--tls-cert", "x.pem"], "--tls-cert and --tls-key go together"),
        (["--artifact-quota", "lots"], "bad size"),
        (["--metrics-port", "99999"], "bad port"),
        (["--token-file", "/nonexistent/token"], "cannot read token file"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_serve_flags_exit_2_with_one_line(tmp_path, args, message):
    r = agent_cli("serve", "--state-dir", str(tmp_path / "s"), *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_insecure_flag_allows_non_loopback(tmp_path, agent_process):
    ap = agent_process("--listen", "0.0.0.0:0", "--insecure", state_dir=tmp_path / "s")
    # the subprocess fixture passes --listen 127.0.0.1:0 first; ours wins
    assert ap.address.startswith("0.0.0.0:")
    port = ap.address.rsplit(":", 1)[1]
    assert make_stub(f"127.0.0.1:{port}").GetInfo(pb.GetInfoRequest(), timeout=10).info_json
    assert ap.stop() == 0


def test_empty_token_file_is_bad_input(tmp_path):
    tf = tmp_path / "token"
    tf.write_text("\n")
    r = agent_cli("serve", "--state-dir", str(tmp_path / "s"), "--token-file", str(tf))
    assert r.returncode == 2 and r.stderr.strip() == f"edgebench-agent: error: token file {tf} is empty"
