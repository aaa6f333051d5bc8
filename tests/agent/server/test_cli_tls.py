"""The CLI over mTLS (--tls-ca/--tls-cert/--tls-key) against a real agent."""

from __future__ import annotations

import json

from test_auth import _make_ca, _make_cert

from controller.cli import main


def test_info_and_bench_over_mtls(agent_factory, tmp_path, tiny_onnx_model, capsys, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'r.db'}")
    d = tmp_path / "pki"
    d.mkdir()
    _make_ca(d, "ca")
    _make_cert(d, "server", "ca", "DNS:localhost,IP:127.0.0.1")
    _make_cert(d, "client", "ca", "DNS:client")
    a = agent_factory(
        tls_cert=str(d / "server.pem"), tls_key=str(d / "server.key"), tls_client_ca=str(d / "ca.pem")
    )
    tls = [
        "--tls-ca",
        str(d / "ca.pem"),
        "--tls-cert",
        str(d / "client.pem"),
        "--tls-key",
        str(d / "client.key"),
    ]
    assert main(["info", "--agent", a.address, *tls, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == "edgebench.info/v1"
    fast = ["--warmup", "0", "--duration", "0.2", "--min-iterations", "3", "--no-telemetry", "--quiet"]
    assert main(["bench", "--agent", a.address, *tls, str(tiny_onnx_model), *fast]) == 0
    capsys.readouterr()
    # no client certificate: the handshake fails, one line, exit 2
    assert main(["info", "--agent", a.address, "--tls-ca", str(d / "ca.pem")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgebench: error: ") and "\n" not in err
    assert main(["info", "--agent", a.address, "--tls-ca", str(d / "missing.pem")]) == 2
    assert "cannot read TLS file" in capsys.readouterr().err
