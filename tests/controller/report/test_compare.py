"""edgebench compare: the bootstrap interval of the speedup (from stored
quantiles and from exact latencies), significance, --fail-on-regression,
--md/--json against the text, --baseline from the results DB, and warnings
when the setups differ. The end-to-end cases run real models, built by our
own model builders, on a real in-process agent."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

from agent.runs import series
from controller.cli import main
from controller.db import ResultsDB
from controller.report import bootstrap
from controller.report.compare import compare, failures
from controller.report.compare_text import render


def _iterations(lat_ms: np.ndarray) -> np.ndarray:
    """An iterations.npy array (start_ns, end_ns, phase) for back-to-back latencies."""
    dur = (lat_ms * 1e6).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(dur)[:-1]])
    return np.stack([start, start + dur, np.ones_like(dur)], axis=1)


# -- the bootstrap -------------------------------------------------------------
def test_bootstrap_from_quantiles_agrees_with_bootstrap_from_exact_latencies():
    rng = np.random.default_rng(7)
    a = rng.lognormal(np.log(2.0), 0.25, 6000)  # skewed, as latencies are
    b = rng.lognormal(np.log(2.04), 0.25, 4001)
    exact = bootstrap.median_ratio_ci(bootstrap.from_latencies(a), bootstrap.from_latencies(b))
    # the quantiles exactly as the agent stores them with every result
    qa = bootstrap.from_series(series.latency(_iterations(a)))
    qb = bootstrap.from_series(series.latency(_iterations(b)))
    assert qa is not None and qa.n == 6000 and qa.source == "quantiles"
    quant = bootstrap.median_ratio_ci(qa, qb)
    for key in ("ratio", "low", "high"):
        assert quant[key] == pytest.approx(exact[key], rel=2e-3), key
    assert exact["low"] < exact["ratio"] < exact["high"]
    # the interval has the width the sample sizes give it: not a degenerate point
    assert 0.01 < exact["high"] - exact["low"] < 0.05


@pytest.mark.parametrize("n", [301, 300])
def test_order_statistic_draws_match_resampling_n_values_with_replacement(n):
    rng = np.random.default_rng(n)
    x = rng.lognormal(0.0, 0.3, n)
    fast = bootstrap.bootstrap_medians(bootstrap.from_latencies(x), np.random.default_rng(1), 20000)
    brute = np.median(rng.choice(x, size=(20000, n)), axis=1)
    np.testing.assert_allclose(
        np.percentile(fast, [2.5, 25, 50, 75, 97.5]), np.percentile(brute, [2.5, 25, 50, 75, 97.5]), rtol=5e-3
    )


def test_bootstrap_is_reproducible_and_run_noise_widens_the_interval():
    rng = np.random.default_rng(3)
    a = bootstrap.from_latencies(rng.lognormal(0.0, 0.05, 3000))
    b = bootstrap.from_latencies(rng.lognormal(0.0, 0.05, 3000))
    assert bootstrap.median_ratio_ci(a, b) == bootstrap.median_ratio_ci(a, b)
    tight = bootstrap.median_ratio_ci(a, b, run_noise=0.0)
    wide = bootstrap.median_ratio_ci(a, b, run_noise=0.02)
    assert wide["low"] < tight["low"] and wide["high"] > tight["high"]
    # two 2 % run-to-run terms: the interval spans about +-1.96 * 2.8 %
    assert wide["high"] / wide["low"] == pytest.approx(np.exp(2 * 1.96 * 0.02 * np.sqrt(2)), rel=0.1)


# -- the comparison of two documents -------------------------------------------
def _doc(run_id: str, lat_ms: np.ndarray, **extra: object) -> dict:
    doc = {
        "run_id": run_id,
        "kind": "bench",
        "status": "completed",
        "model": {"name": "m.onnx", "sha256": "a" * 64, "size_bytes": 4000},
        "agent": {"hostname": "orin-01", "board": "NVIDIA Jetson Orin NX", "profile": "orin-nx"},
        "runtime": {"name": "onnxruntime", "version": "1.18.0", "providers": ["CPUExecutionProvider"]},
        "throughput_ips": 1000 / float(np.mean(lat_ms)),
        "latency_ms": {"p50": float(np.median(lat_ms)), "p99": float(np.quantile(lat_ms, 0.99))},
        "series": {"latency_ms": series.latency(_iterations(lat_ms))},
    }
    doc.update(extra)
    return doc


def test_different_boards_warn_and_different_models_are_a_note():
    rng = np.random.default_rng(0)
    a = _doc("A", rng.lognormal(0, 0.1, 500))
    b = _doc("B", rng.lognormal(0, 0.1, 500))
    same = compare(a, b)
    assert same["warnings"] == [] and same["notes"] == []
    b["agent"] = {"hostname": "xavier-02", "board": "NVIDIA Jetson Xavier NX", "profile": "xavier-nx"}
    b["model"] = {"name": "m-int8.onnx", "sha256": "b" * 64, "size_bytes": 1000}
    b["runtime"] = {"name": "onnxruntime", "version": "1.16.3", "providers": ["CPUExecutionProvider"]}
    c = compare(a, b)
    assert [w.split(":")[0] for w in c["warnings"]] == ["the boards differ", "the runtimes differ"]
    assert "orin-01" in c["warnings"][0] and "xavier-02" in c["warnings"][0]
    assert len(c["notes"]) == 1 and "models differ" in c["notes"][0]
    assert c["size_bytes"]["ratio"] == 4.0
    text = render(c)
    assert "warning: the boards differ" in text and "note: the models differ" in text
    assert "warning: the models" not in text


def test_a_run_that_did_not_complete_is_warned_of_and_fails_the_regression_check():
    """compare crash.json ok.json --fail-on-regression compared them as if both
    were whole runs, with no word that A had failed, and passed."""
    rng = np.random.default_rng(0)
    a = _doc("A", rng.lognormal(0, 0.1, 500))
    b = _doc("B", rng.lognormal(0, 0.1, 500))
    a.update(status="failed", error="worker died: SIGSEGV (signal 11)")
    c = compare(a, b)
    assert c["warnings"][0] == "A did not complete: failed (worker died: SIGSEGV (signal 11))"
    assert "warning: A did not complete" in render(c)
    assert failures(c, 5.0) == [
        "cannot judge a regression: A did not complete: failed (worker died: SIGSEGV (signal 11))"
    ]
    assert failures(compare(b, _doc("C", rng.lognormal(0, 0.1, 500))), 5.0) == []


def test_accuracy_rows_and_a_failed_gate_in_b_fail_the_regression_check():
    rng = np.random.default_rng(1)
    lat = rng.lognormal(0, 0.1, 500)
    va = {
        "outputs": [{"name": "scores", "cosine": {"min": 0.999, "mean": 0.9995}, "mask_iou": 0.98}],
        "passed": True,
    }
    vb = {
        "outputs": [{"name": "scores", "cosine": {"min": 0.91, "mean": 0.93}, "mask_iou": 0.0}],
        "passed": False,
        "gates": [
            {"name": "min_mask_iou", "passed": False, "message": "scores mask_iou 0.000 < 0.5 (sample 3)"}
        ],
    }
    c = compare(
        _doc("A", lat, kind="validate", validation=va), _doc("B", lat, kind="validate", validation=vb)
    )
    metrics = c["accuracy"]["outputs"][0]["metrics"]
    assert set(metrics) == {"cosine.min", "cosine.mean", "mask_iou"}
    assert metrics["mask_iou"]["delta"] == pytest.approx(-0.98)
    assert metrics["cosine.min"]["a"] == 0.999 and metrics["cosine.min"]["b"] == 0.91
    # the same latencies: no slowdown, but B's failed gate is a failure
    assert not c["speedup"]["significant"]
    why = failures(c, 5.0)
    assert len(why) == 1 and "accuracy gate" in why[0] and "mask_iou 0.000" in why[0]
    assert "scores mask_iou" in render(c) and "accuracy gates: A passed, B FAILED" in render(c)
    # without validation on either side there is no accuracy section and no failure
    plain = compare(_doc("A", lat), _doc("B", lat))
    assert plain["accuracy"] is None and failures(plain, 5.0) == []


def test_a_result_without_latency_series_gets_no_interval_and_cannot_be_significant():
    rng = np.random.default_rng(2)
    a, b = _doc("A", rng.lognormal(0, 0.1, 500)), _doc("B", rng.lognormal(1, 0.1, 500))
    del b["series"]
    s = compare(a, b)["speedup"]
    assert s["low"] is None and s["significant"] is None and s["source_b"] is None
    assert s["ratio"] == pytest.approx(a["latency_ms"]["p50"] / b["latency_ms"]["p50"])
    assert failures(compare(a, b), 1.0) == []


# -- end to end: real models on a real agent -----------------------------------
FAST = [
    "--threads",
    "1",
    "--warmup",
    "0.3",
    "--duration",
    "0.6",
    "--min-iterations",
    "50",
    "--no-telemetry",
    "--quiet",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A small CNN and a variant with three residual blocks per stage instead of
    one: the same stem and head, about 2.3x the convolution work."""
    from controller.models.onnx_cnn import build_cnn

    d = tmp_path_factory.mktemp("models")
    kw = {"size": 96, "widths": (16, 32, 64), "classes": 10, "seed": 1}
    return build_cnn(d / "orig.onnx", blocks=1, **kw), build_cnn(d / "slow.onnx", blocks=3, **kw)


@pytest.fixture
def cli(agent, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    db = f"sqlite:///{tmp_path / 'r.db'}"

    def bench(model, *extra: str) -> dict:
        out = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
        rc = main(
            ["bench", "--agent", agent.address, "--db", db, str(model), *FAST, *extra, "--json", str(out)]
        )
        assert rc == 0
        return json.loads(out.read_text())

    def compare_cli(*args: str) -> int:
        return main(["compare", "--db", db, *args])

    return bench, compare_cli, db, agent


def _md_rows(md: str) -> dict[str, list[str]]:
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in r.strip("|").split("|")] for r in rows[1:])}


@pytest.mark.serial  # two timed benches compared: run alone (Makefile)
def test_two_benches_of_one_model_differ_insignificantly_and_a_2x_slower_variant_is_flagged(
    cli, models, tmp_path, capsys
):
    bench, compare_cli, _, agent = cli
    orig, slow = models
    a1, a2, b = bench(orig), bench(orig), bench(slow)
    capsys.readouterr()

    same_json = tmp_path / "same.json"
    assert compare_cli(a1["run_id"], a2["run_id"], "--fail-on-regression", "5", "--json", str(same_json)) == 0
    text = capsys.readouterr().out
    s = json.loads(same_json.read_text())["speedup"]
    assert s["source_a"] == s["source_b"] == "quantiles"
    assert s["low"] < 1 < s["high"] and s["significant"] is False
    assert "no significant difference" in text and "B slower" not in text and "REGRESSION" not in text
    assert ">1 means B is" in text  # the convention is stated

    out_json, out_md = tmp_path / "c.json", tmp_path / "c.md"
    rc = compare_cli(
        a1["run_id"], b["run_id"], "--fail-on-regression", "10", "--json", str(out_json), "--md", str(out_md)
    )
    assert rc == 3
    text = capsys.readouterr().out
    c = json.loads(out_json.read_text())
    s = c["speedup"]
    assert s["significant"] is True and s["high"] < 1 and s["verdict"] == "B slower"
    assert 0.3 < s["ratio"] < 0.6  # about 2.3x the work
    assert s["slowdown_pct"] == pytest.approx((1 / s["ratio"] - 1) * 100)
    assert c["regression"]["failed"] and "slower than A" in c["regression"]["reasons"][0]
    # the ratio is the ratio of the runs' own medians (the stored quantiles' middle one)
    mid = series.LATENCY_QUANTILES // 2
    qa, qb = a1["series"]["latency_ms"]["quantiles"][mid], b["series"]["latency_ms"]["quantiles"][mid]
    assert s["ratio"] == pytest.approx(qa / qb, rel=1e-9)
    assert s["ratio"] == pytest.approx(a1["latency_ms"]["p50"] / b["latency_ms"]["p50"], rel=0.02)
    assert (
        c["latency_ms"]["p99"]["a"] == a1["latency_ms"]["p99"]
        and c["latency_ms"]["p99"]["b"] == b["latency_ms"]["p99"]
    )
    assert c["size_bytes"]["ratio"] == pytest.approx(a1["model"]["size_bytes"] / b["model"]["size_bytes"])
    assert c["notes"] and not c["warnings"]  # different models, same board

    # Markdown, JSON and the text say the same numbers
    rows = _md_rows(out_md.read_text())
    cell = f"{s['ratio']:.3f}x [{s['low']:.3f}, {s['high']:.3f}] B slower *"
    assert rows["median latency ms"] == [
        f"{s['median_a_ms']:.3f}",
        f"{s['median_b_ms']:.3f}",
        "",
        "speedup " + cell,
    ]
    p99 = c["latency_ms"]["p99"]
    assert rows["latency p99"] == [
        f"{p99['a']:.3f}",
        f"{p99['b']:.3f}",
        f"{p99['delta']:+.3f}",
        f"{p99['pct']:+.1f}%",
    ]
    tp = c["throughput_ips"]
    assert rows["throughput"][:2] == [f"{tp['a']:.2f}", f"{tp['b']:.2f}"]
    assert rows["size (bytes)"][:2] == [str(a1["model"]["size_bytes"]), str(b["model"]["size_bytes"])]
    assert cell in text and "REGRESSION: B is" in text and "REGRESSION" in out_md.read_text()
    cells = (f"{p99['a']:.3f}", f"{p99['b']:.3f}", f"{p99['delta']:+.3f}", f"{p99['pct']:+.1f}%")
    assert re.search(r"latency p99" + "".join(r"\s+" + re.escape(x) for x in cells), text)

    # a significant slowdown under the threshold does not fail
    assert compare_cli(a1["run_id"], b["run_id"], "--fail-on-regression", "1000") == 0
    # the exact latencies from the run directories give the same verdict
    runs = agent.state_dir / "runs"
    ej = tmp_path / "exact.json"
    assert (
        compare_cli(
            a1["run_id"],
            b["run_id"],
            "--files-a",
            str(runs / a1["run_id"]),
            "--files-b",
            str(runs / b["run_id"]),
            "--json",
            str(ej),
        )
        == 0
    )
    e = json.loads(ej.read_text())["speedup"]
    assert e["source_a"] == e["source_b"] == "iterations" and e["significant"] and e["high"] < 1
    assert e["ratio"] == pytest.approx(s["ratio"], rel=0.01)
    capsys.readouterr()
    assert compare_cli(a1["run_id"], b["run_id"], "--files-a", str(runs / b["run_id"])) == 2
    assert f"holds run {b['run_id']}" in capsys.readouterr().err


def test_baseline_is_the_newest_earlier_run_with_the_label_of_the_same_model_on_the_same_board(
    cli, models, tmp_path, capsys
):
    bench, compare_cli, db, _ = cli
    orig, slow = models
    old = bench(orig, "--label", "bsp=r35")
    base = bench(orig, "--label", "bsp=r35", "--label", "ci=nightly")
    bench(slow, "--label", "bsp=r35")  # the label, but another model
    new = bench(orig, "--label", "bsp=r36")
    later = bench(orig, "--label", "bsp=r35")  # after RUN: not its baseline
    # a newer run with the label and the model, on another board
    other = copy.deepcopy(base)
    other["run_id"] = base["run_id"] + "x"
    other["created_unix"] = new["created_unix"] - 0.001
    other["agent"]["hostname"] = "another-board"
    rdb = ResultsDB(db)
    rdb.store(other)
    rdb.close()
    capsys.readouterr()

    out = tmp_path / "b.json"
    assert compare_cli("--baseline", "bsp=r35", new["run_id"], "--json", str(out)) == 0
    c = json.loads(out.read_text())
    assert (c["a"], c["b"]) == (base["run_id"], new["run_id"])
    assert old["run_id"] != base["run_id"] and later["run_id"] not in (c["a"], c["b"])
    # a label key alone matches any value
    assert compare_cli("--baseline", "ci", new["run_id"], "--json", str(out)) == 0
    assert json.loads(out.read_text())["a"] == base["run_id"]
    # the earliest run has no earlier one
    capsys.readouterr()
    assert compare_cli("--baseline", "bsp=r35", old["run_id"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "edgebench: error: no baseline: no earlier completed run labelled bsp=r35"
    )
    assert compare_cli("--baseline", "bsp=r34", new["run_id"]) == 2
    assert "labelled bsp=r34" in capsys.readouterr().err
    assert compare_cli("--baseline", "=x", new["run_id"]) == 2
    assert compare_cli("--baseline", "bsp=r35", new["run_id"], base["run_id"]) == 2
    assert "takes one RUN" in capsys.readouterr().err
    assert compare_cli(new["run_id"], "--fail-on-regression", "-1") == 2
