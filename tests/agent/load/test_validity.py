"""VALID / INVALID as MLPerf LoadGen says it (agent/validity.py): the early-
stopping query minimums, the conservative percentile estimate, the minimum
duration and query count, synthetic inputs said, the terminal's last line,
and --require-valid as a gate (exit 3) through the real CLI and agent."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from agent.spec import ValiditySpec
from agent.stats import PERCENTILES, nearest_rank
from agent.validity import assess, min_queries, overs_allowed, percentile_support, verdict_line
from controller.cli import main
from controller.report.terminal import render

FAST = ["--warmup", "0", "--no-telemetry", "--quiet"]


def test_minimum_queries_are_loadgens_early_stopping_counts():
    # LoadGen prints "Need to process at least N queries for early stopping";
    # at confidence 0.99, tolerance 0 these are its SingleStream minimums
    assert [min_queries(p) for p in (90, 99, 99.9)] == [64, 662, 6636]
    assert min_queries(50) < min_queries(95) < min_queries(99)


def test_the_estimate_is_conservative_and_a_short_run_supports_no_p999():
    ms = np.arange(1, 2001, dtype=np.float64)  # 2,000 queries, latencies 1..2000 ms
    sup = percentile_support(ms, PERCENTILES)
    assert sup["p999"] == {"percentile": 99.9, "min_queries": 6636, "supported": False, "estimate_ms": None}
    for key in ("p50", "p90", "p99"):
        s = sup[key]
        assert s["supported"]
        # the early-stopping estimate discards t - 1 of the highest latencies: never below the nominal one
        assert s["estimate_ms"] >= nearest_rank(ms, PERCENTILES[key])
        t = overs_allowed(len(ms), PERCENTILES[key])
        assert s["estimate_ms"] == ms[len(ms) - t]
    assert overs_allowed(63, 90) == 0 and overs_allowed(64, 90) == 1


def _doc(duration_s: float, iterations: int) -> dict:
    ms = np.linspace(1.0, 2.0, iterations)
    support = percentile_support(ms, PERCENTILES)
    return {"duration_s": duration_s, "iterations": iterations, "latency_support": support}


def _spec(validity=None, inputs=None):
    return SimpleNamespace(validity=validity, inputs_sha256=inputs)


def test_assess_names_each_unmet_minimum_and_says_synthetic_inputs():
    v = assess(_doc(2.0, 50), _spec())
    assert not v["valid"]
    assert v["reasons"] == [
        "measured 2.0 s < minimum duration 10 s",
        "50 queries < minimum 100",
        "p90 needs 64 queries for early stopping, ran 50",
    ]
    assert any("synthetic (random) inputs" in n for n in v["notes"]) and v["synthetic_inputs"]
    assert verdict_line(v).startswith("Result is: INVALID (measured 2.0 s < minimum duration 10 s; ")
    ok = assess(_doc(12.0, 5000), _spec(inputs="a" * 64))
    assert ok["valid"] and ok["reasons"] == [] and not ok["synthetic_inputs"]
    assert verdict_line(ok) == "Result is: VALID"
    # options change the minimums and the percentile judged
    strict = assess(_doc(12.0, 5000), _spec(ValiditySpec(min_duration_s=1, min_queries=1, percentile=99.9)))
    assert strict["reasons"] == ["p999 needs 6636 queries for early stopping, ran 5000"]


def test_terminal_marks_an_unsupported_percentile_and_ends_with_the_verdict():
    doc = {"run_id": "r", "kind": "bench", "status": "completed", "latency_ms": {"p99": 1.5, "p999": 9.75}}
    doc.update(_doc(12.0, 2000))
    doc["validity"] = assess(doc, _spec(inputs="b" * 64))
    text = render(doc)
    assert "9.750" not in text and "n/s" in text and "p999 needs 6,636" in text
    assert "1.500" in text  # a supported percentile is shown as a number
    assert text.splitlines()[-1] == "Result is: VALID"
    from controller.report.markdown import render as markdown

    md = markdown(doc)
    assert "| n/s |" in md and "9.750" not in md and "- **Result is: VALID**" in md
    from controller.report.html import render_html

    assert '<span class="good">Result is: VALID</span>' in render_html({**doc, "warnings": ["swap in use"]})


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_require_valid_fails_a_short_run_and_passes_a_long_enough_one(env, tiny_onnx_model, capsys):
    out = env / "r.json"
    args = ["bench", str(tiny_onnx_model), *FAST, "--duration", "0.3", "--min-iterations", "5"]
    assert main([*args, "--require-valid", "--json", str(out)]) == 3
    text = capsys.readouterr().out
    last = text.strip().splitlines()[-1]
    assert last.startswith("Result is: INVALID (measured 0.3 s < minimum duration 10 s")
    doc = json.loads(out.read_text())
    assert doc["validity"]["valid"] is False
    assert {"name": "validity", "passed": False} == {k: doc["gates"][-1][k] for k in ("name", "passed")}
    # the same run judged by minimums it meets, with real inputs: VALID, exit 0
    x = np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32)
    np.savez(env / "x.npz", x=x)
    rc = main([*args, "--require-valid", "--valid-min-duration", "0.2", "--valid-min-queries", "5",
               "--inputs", str(env / "x.npz"), "--json", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert text.strip().splitlines()[-1] == "Result is: VALID"
    assert "synthetic" not in text and json.loads(out.read_text())["validity"]["valid"] is True


def test_a_bad_validity_option_is_one_line_exit_2(env, tiny_onnx_model, capsys):
    assert main(["bench", str(tiny_onnx_model), *FAST, "--valid-percentile", "100"]) == 2
    err = capsys.readouterr().err
    assert "bad percentile '100'" in err and "Traceback" not in err
