"""`edgebench demo`: builds the CNN, benches it on an embedded agent, writes the
result under --out and stores it in the DB."""

from __future__ import annotations

import json

from controller.cli import main
from controller.db import ResultsDB


def test_demo_writes_result_and_stores_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'd.db'}")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--warmup", "0.2", "--duration", "0.5"]) == 0
    doc = json.loads((out / "result.json").read_text())
    assert doc["status"] == "completed" and doc["model"]["name"] == "demo_cnn.onnx"
    assert doc["iterations"] >= 10 and doc["throughput_ips"] > 0
    assert (out / f"{doc['run_id']}.json").is_file()
    text = capsys.readouterr().out
    assert "latency ms" in text and "board" in text and doc["run_id"] in text
    db = ResultsDB()
    assert db.get(doc["run_id"])["run_id"] == doc["run_id"]
    db.close()
