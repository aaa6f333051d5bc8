"""`edgebench fleet status`: reachable boards with profile, L4T, runtimes,
current run and the temperature now (live from /metrics); an unreachable
board is a row with its reason, not an error; a profile other than the
inventory expects is flagged."""

from __future__ import annotations

import json
import shutil

from conftest import ROOT, wait_until

from agent.spec import RunSpec
from controller.cli import main
from controller.client import AgentClient

FIX = ROOT / "tests" / "fixtures"


def test_status_shows_every_board_live_temperature_and_current_run(
    agent_factory, tiny_onnx_model, tmp_path, capsys
):
    tree = tmp_path / "orin-nx"
    shutil.copytree(FIX / "orin-nx", tree, symlinks=True)
    orin = agent_factory(sysfs_root=str(tree), profile="orin-nx", metrics_port=0)
    ti = agent_factory(sysfs_root=str(FIX / "am62a"), profile="am62a")
    metrics = orin.server.metrics_url.split("//")[1].split("/")[0]
    (tmp_path / "boards.yaml").write_text(
        "boards:\n"
        f"  - name: orin-1\n    address: {orin.address}\n    metrics: {metrics}\n    profile: orin-nx\n"
        f"  - name: ti-1\n    address: {ti.address}\n    profile: imx8mp\n"
        "  - name: gone\n    address: 127.0.0.1:1\n"
    )
    with AgentClient(orin.address) as c:
        sha = c.push(tiny_onnx_model)
        run_id = c.start_run(
            RunSpec(kind="bench", model_sha256=sha, duration_s=30, warmup_s=0, telemetry=False)
        )
        try:
            assert wait_until(lambda: c.get_run(run_id)["status"] == "running", timeout=20)
            # the zone warms after the agent started: status must show now, not the fingerprint's reading
            zone = (tree / "sys/class/thermal/thermal_zone0").resolve() / "temp"
            zone.write_text("71250\n")
            rc = main(
                [
                    "fleet",
                    "status",
                    "--inventory",
                    str(tmp_path / "boards.yaml"),
                    "--json",
                    str(tmp_path / "s.json"),
                ]
            )
        finally:
            c.cancel_run(run_id)
    assert rc == 0
    out = capsys.readouterr().out
    rows = {r["board"]: r for r in json.loads((tmp_path / "s.json").read_text())}
    o, t, g = rows["orin-1"], rows["ti-1"], rows["gone"]
    assert o["reachable"] and o["profile"] == "orin-nx" and o["profile_ok"] and o["l4t"] == "35.4.1"
    assert o["current_run"] == run_id and "onnxruntime" in o["runtimes"]
    assert o["temp_source"] == "metrics" and o["temps_c"]["cpu"] == 71.25 and o["temp_max_c"] == 71.25
    assert t["reachable"] and t["profile"] == "am62a" and not t["profile_ok"] and t["current_run"] is None
    assert t["temp_source"] == "fingerprint" and t["temp_max_c"] == max(t["temps_c"].values())
    assert not g["reachable"] and "unreachable" in g["reason"]
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "71.2 C" in lines["orin-1"] and run_id in lines["orin-1"] and "R35.4.1" in lines["orin-1"]
    assert "(expected imx8mp)" in lines["ti-1"]
    assert lines["gone"].split()[1] == "no" and "unreachable" in lines["gone"]
