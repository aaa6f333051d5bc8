"""`fleet prometheus-targets` writes a Prometheus file_sd file: one group per
board with a metrics address, labelled with the board name (the Grafana
fleet dashboard's variable) and its inventory labels; a real agent's
/metrics answers at each target. docs/grafana-fleet.json filters every
query by that board variable."""

from __future__ import annotations

import json
import re
import urllib.request

from conftest import ROOT

from controller.cli import main


def test_targets_file_names_each_board_and_its_metrics_answer(agent_factory, tmp_path, capsys):
    a = agent_factory(sysfs_root=str(ROOT / "tests/fixtures/orin-nx"), profile="orin-nx", metrics_port=0)
    metrics = a.server.metrics_url.split("//")[1].split("/")[0]
    (tmp_path / "boards.yaml").write_text(
        "boards:\n"
        f"  - name: orin-1\n    address: {a.address}\n    metrics: {metrics}\n"
        "    labels: {site: lab-2, enclosure: sealed-ip67}\n    profile: orin-nx\n"
        "  - name: no-metrics\n    address: 127.0.0.1:1\n"
    )
    out = tmp_path / "targets.json"
    assert (
        main(["fleet", "prometheus-targets", "--inventory", str(tmp_path / "boards.yaml"), "--out", str(out)])
        == 0
    )
    io = capsys.readouterr()
    assert "1 target(s)" in io.out and "no-metrics" in io.err
    groups = json.loads(out.read_text())
    assert groups == [
        {
            "targets": [metrics],
            "labels": {
                "board": "orin-1",
                "edgebench_address": a.address,
                "edgebench_enclosure": "sealed-ip67",
                "edgebench_site": "lab-2",
                "edgebench_profile": "orin-nx",
            },
        }
    ]
    with urllib.request.urlopen(f"http://{groups[0]['targets'][0]}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert "edgebench_thermal_zone_celsius" in text and "edgebench_agent_info" in text


def test_grafana_fleet_dashboard_has_a_board_variable_used_by_every_query():
    d = json.loads((ROOT / "docs" / "grafana-fleet.json").read_text())
    names = [v["name"] for v in d["templating"]["list"]]
    assert "board" in names
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    assert exprs and all('board=~"$board"' in e for e in exprs)
    # only metrics the agent exports (agent/server/metrics.py), plus Prometheus' own `up`
    src = (ROOT / "agent" / "server" / "metrics.py").read_text()
    for name in {m for e in exprs for m in re.findall(r"\b(edgebench_[a-z_]+)", e)}:
        assert name.removesuffix("_total") in src, name
