"""edgebench history: a model's figure over time on one board from the DB;
a run significantly slower than the previous comparable run (same sha256,
kind and board; compare's bootstrap on the stored latency quantiles) is
flagged, a run within noise is not, and other boards and variants are not
compared with it."""

from __future__ import annotations

import json

import numpy as np

from controller.cli import main
from controller.db import ResultsDB

SHA_A, SHA_B = "aa" * 32, "bb" * 32


def _doc(run_id: str, created: float, median_ms: float, sha: str = SHA_A, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lat = rng.normal(median_ms, median_ms * 0.02, 2000)
    q = np.quantile(lat, np.linspace(0, 1, 1001))
    return {
        "run_id": run_id,
        "kind": "bench",
        "status": "completed",
        "created_unix": created,
        "model": {"name": "cls.onnx", "sha256": sha},
        "agent": {"hostname": "h"},
        "latency_ms": {"p50": float(np.median(lat)), "p99": float(np.quantile(lat, 0.99))},
        "throughput_ips": 1000.0 / float(np.median(lat)),
        "series": {"latency_ms": {"n": 2000, "quantiles": q.tolist()}},
    }


def test_history_flags_a_significant_slowdown_only(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = ResultsDB(url)
    medians = [1.0, 1.002, 0.998, 1.001, 1.30]  # the last one is 30% slower
    for n, m in enumerate(medians):
        db.store(_doc(f"r{n}", 100.0 + n, m, seed=n), agent="orin-1")
    db.store(_doc("other-board", 103.5, 2.0, seed=9), agent="orin-2")  # not this board's history
    db.store(_doc("variant-b", 103.6, 3.0, sha=SHA_B, seed=8), agent="orin-1")  # another variant
    db.close()
    out = tmp_path / "h.json"
    rc = main(["history", "--model", "cls.onnx", "--board", "orin-1", "--db", url, "--json", str(out),
               "--html", str(tmp_path / "h.html")])  # fmt: skip
    assert rc == 3  # the newest run is a regression
    pts = json.loads(out.read_text())["points"]
    a = [p for p in pts if p["model_sha256"] == SHA_A]
    assert [p["run_id"] for p in a] == ["r0", "r1", "r2", "r3", "r4"]
    assert [p["regression"] for p in a] == [False, False, False, False, True]
    assert a[4]["vs"] == "r3" and a[4]["high"] < 1 and 25 < a[4]["slowdown_pct"] < 35
    b = [p for p in pts if p["model_sha256"] == SHA_B]
    assert b[0]["vs"] is None and not b[0]["regression"]  # a different variant is not comparable
    assert all(p["run_id"] != "other-board" for p in pts)
    # the figure is the stored throughput
    for p, m in zip(a, medians, strict=True):
        assert abs(p["value"] - 1000.0 / m) / (1000.0 / m) < 0.02
    text = capsys.readouterr().out
    assert "REGRESSION" in text and "6 run(s), 1 regression(s)" in text
    assert "<img" in (tmp_path / "h.html").read_text()
    # a next run as slow as r4 is no new regression: exit 0; by sha prefix, that variant's history
    db = ResultsDB(url)
    db.store(_doc("r5", 110.0, 1.30, seed=5), agent="orin-1")
    db.close()
    assert main(["history", "--model", SHA_A[:12], "--board", "orin-1", "--db", url, "--json", str(out)]) == 0
    pts = json.loads(out.read_text())["points"]
    assert [p["run_id"] for p in pts if p["regression"]] == ["r4"] and pts[-1]["run_id"] == "r5"


def test_history_of_nothing_is_bad_input(tmp_path, capsys):
    assert main(["history", "--model", "none.onnx", "--db", f"sqlite:///{tmp_path / 'e.db'}"]) == 2
    assert "no stored runs of none.onnx" in capsys.readouterr().err


def test_history_compares_a_rate_driven_run_only_with_runs_under_the_same_load(tmp_path, capsys):
    """A --rate 30 run (latency from the scheduled arrival) was flagged '765.7% slower'
    than the flat-out run before it; it is now compared with its own kind of load."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = ResultsDB(url)
    db.store(_doc("flat", 100.0, 1.0, seed=1), agent="orin-1")
    paced = _doc("paced", 101.0, 8.7, seed=2)
    paced["load"] = {"pattern": "rate", "rate_hz": 30.0, "burst": None, "deadline_ms": 33.3}
    db.store(paced, agent="orin-1")
    paced2 = _doc("paced2", 102.0, 8.7, seed=3)
    paced2["load"] = dict(paced["load"])
    db.store(paced2, agent="orin-1")
    db.close()
    out = tmp_path / "h.json"
    assert main(["history", "--model", "cls.onnx", "--db", url, "--json", str(out)]) == 0
    pts = {p["run_id"]: p for p in json.loads(out.read_text())["points"]}
    assert pts["paced"]["vs"] is None and not pts["paced"]["regression"]
    assert pts["paced2"]["vs"] == "paced" and pts["paced2"]["load"] == "rate"


def test_history_refuses_a_metric_no_run_has(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = ResultsDB(url)
    db.store(_doc("r0", 100.0, 1.0), agent="orin-1")
    db.close()
    assert main(["history", "--model", "cls.onnx", "--db", url, "--metric", "soak.bogus_ips"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no stored run has a number at --metric 'soak.bogus_ips'" in err[0]
