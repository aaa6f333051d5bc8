"""bench --start cold|warm|both (agent/runtimes/cache.py): ONNX Runtime's
optimized-model file for real (a cold start writes it, a warm start loads
it), the per-model cache directories the TensorRT EP and the VX delegate are
pointed at, TIDL artifacts reported as given, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import BadInput
from agent.runtimes import cache
from agent.runtimes.base import make_runner
from agent.spec import RunSpec
from controller.cli import main
from controller.db import ResultsDB

FAST = ["--warmup", "0", "--duration", "0.3", "--min-iterations", "5", "--no-telemetry", "--quiet"]
SHA = "ab" * 32


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_start_both_writes_then_loads_orts_optimized_model(env, tiny_onnx_model, capsys):
    out = env / "both.json"
    assert main(["bench", str(tiny_onnx_model), *FAST, "--start", "both", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    cold, warm = json.loads(out.read_text())["starts"]
    assert cold["start"]["mode"] == "cold" and warm["start"]["mode"] == "warm"
    cc, wc = cold["start"]["cache"], warm["start"]["cache"]
    assert cc["kind"] == wc["kind"] == "ort-optimized-model" and cc["path"] == wc["path"]
    assert cc["hit"] is False and cc["written"] is True  # the cold start optimized and saved the graph
    assert wc["hit"] is True  # the warm start loaded the saved graph
    saved = Path(wc["path"])
    assert saved.is_file() and saved.read_bytes()[:2] != b""  # a real ONNX file ORT wrote
    import onnx

    onnx.checker.check_model(onnx.load(saved))
    for r in (cold, warm):
        assert r["start"]["init_ms"] == r["init_ms"] > 0 and r["start"]["first_inference_ms"] > 0
    # one comparison table, then the verdict as the last line
    assert "cold   ort-optimized-model   miss" in text and "warm   ort-optimized-model   hit" in text
    assert text.strip().splitlines()[-1].startswith("Result is: INVALID (cold: measured 0.3 s")
    db = ResultsDB()
    try:
        rows = {r["run_id"]: r for r in db.query(limit=None)}
    finally:
        db.close()
    assert set(rows) == {cold["run_id"], warm["run_id"]}
    # a later cold start empties the cache first: a miss again
    assert main(["bench", str(tiny_onnx_model), *FAST, "--start", "cold", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["start"]["cache"]["hit"] is False


def _runner(name: str = "onnxruntime"):
    return make_runner(name)  # the real runner, not loaded: prepare only reads its name and version


def test_tensorrt_and_vx_caches_are_per_model_dirs_emptied_on_a_cold_start(tmp_path, monkeypatch):
    run_dir = tmp_path / "state" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    profile_opts = {"tensorrt": {"trt_engine_cache_path": "/var/cache/edgebench/trt"}}
    spec = RunSpec(
        kind="bench",
        model_sha256=SHA,
        providers=["tensorrt", "cpu"],
        start="warm",
        provider_options=profile_opts,
    )
    new, start = cache.prepare(spec, run_dir, _runner())
    d = Path(start["cache"]["path"])
    assert start["cache"]["kind"] == "tensorrt-engine" and start["cache"]["hit"] is False
    assert d.parent == tmp_path / "state" / "cache" / "trt" and d.is_dir()
    trt = new.provider_options["tensorrt"]
    assert trt["trt_engine_cache_enable"] == "1" and trt["trt_engine_cache_path"] == str(d)
    (d / "engine.trt").write_bytes(b"x")  # what the EP leaves behind
    assert cache.prepare(spec, run_dir, _runner())[1]["cache"]["hit"] is True
    cold = RunSpec.from_dict({**spec.to_dict(), "start": "cold"})
    assert cache.prepare(cold, run_dir, _runner())[1]["cache"]["hit"] is False and not any(d.iterdir())
    # the VX delegate's graph cache, enabled by the i.MX 8M Plus profile's environment
    monkeypatch.setenv(cache.VX_ENABLE, "1")
    lite = RunSpec(kind="bench", model_sha256=SHA, runtime="litert", start="warm")
    _, vx = cache.prepare(lite, run_dir, _runner("litert"))
    assert vx["cache"]["kind"] == "vx-graph"
    import os

    assert os.environ[cache.VX_DIR] == vx["cache"]["path"]


def test_tidl_artifacts_are_reported_as_given(tmp_path):
    run_dir = tmp_path / "state" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    tidl = {"TIDLExecutionProvider": {"artifacts_folder": "/opt/art"}}
    providers = ["TIDLExecutionProvider", "CPUExecutionProvider"]
    spec = RunSpec(kind="bench", model_sha256=SHA, providers=providers, provider_options=tidl, start="cold")
    _, start = cache.prepare(spec, run_dir, _runner())
    assert start["cache"] == {"kind": "tidl-artifacts", "path": "/opt/art", "hit": None,
                              "note": "compiled offline: used as given"}  # fmt: skip


def test_a_start_mode_is_checked(env, tiny_onnx_model, capsys):
    with pytest.raises(BadInput, match="start must be one of cold, warm"):
        RunSpec(kind="bench", model_sha256=SHA, start="tepid").validate()
    with pytest.raises(BadInput, match="not to validate"):
        RunSpec(kind="validate", model_sha256=SHA, reference_sha256=SHA, start="cold").validate()
    assert main(["bench", str(tiny_onnx_model), *FAST, "--start", "hot"]) == 2
    assert "invalid choice: 'hot'" in capsys.readouterr().err
