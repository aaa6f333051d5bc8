"""``--start cold|warm``: the runtime's own cache, emptied before a cold start
and used by a warm one, so init time and the first inference are measured by
cache state (Qualcomm AI Hub splits compile, first load and later loads the
same way; a VX graph without its cache takes minutes: VeriSilicon/TIM-VX#287).

The caches live under ``STATE/cache/<kind>/<key>``, one per model and
runtime options (the key), so emptying one never touches another model's:

- TensorRT EP engine cache (``trt_engine_cache_enable``/``trt_engine_cache_path``,
  the options the Jetson profiles already set; here pointed at our directory);
- the VX delegate's graph cache (``VIV_VX_ENABLE_CACHE_GRAPH_BINARY``,
  ``VIV_VX_CACHE_BINARY_GRAPH_DIR``, the i.MX 8M Plus profile's environment);
- ONNX Runtime's optimized model (``SessionOptions.optimized_model_filepath``:
  a cold start optimizes and saves the graph there; a warm start loads the
  saved graph with graph optimizations off);
- a TIDL artifacts folder is compiled offline: reported as given, no start to measure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from agent.names import canonical_provider
from agent.spec import RunSpec
from agent.store.paths import state_dir_of

TRT = "TensorrtExecutionProvider"
TIDL = "TIDLExecutionProvider"
VX_ENABLE = "VIV_VX_ENABLE_CACHE_GRAPH_BINARY"
VX_DIR = "VIV_VX_CACHE_BINARY_GRAPH_DIR"


def _key(spec: RunSpec, version: str) -> str:
    opts = {p: {k: v for k, v in o.items() if "cache" not in k} for p, o in spec.provider_options.items()}
    what = [spec.model_sha256, version, spec.runtime, spec.providers, opts, spec.delegate]
    blob = json.dumps([*what, spec.graph_optimization_level], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _nonempty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _provider(spec: RunSpec, name: str) -> str | None:
    """The spec's spelling of a provider (tensorrt, TensorrtExecutionProvider...)."""
    for p in spec.providers:
        if canonical_provider(p, [name]) == name:
            return p
    return None


def prepare(spec: RunSpec, run_dir: Path, runner: Any) -> tuple[RunSpec, dict[str, Any]]:
    """(the spec the runner loads with, ``start{mode, cache{kind, path, hit, note}}``);
    a cold start empties the cache first. Sets ``runner.optimized_cache`` for ORT's file."""
    mode = spec.start
    version = str(getattr(getattr(runner, "ort", None), "__version__", "") or "")
    base = state_dir_of(run_dir) / "cache"
    key = _key(spec, version)
    cache: dict[str, Any] = {"kind": None, "path": None, "hit": None}
    trt, tidl = _provider(spec, TRT), _provider(spec, TIDL)
    if runner.name == "onnxruntime" and tidl is not None:
        folder = (spec.provider_options.get(tidl) or {}).get("artifacts_folder")
        cache.update(kind="tidl-artifacts", path=folder, note="compiled offline: used as given")
        return spec, {"mode": mode, "cache": cache}
    if runner.name == "onnxruntime" and trt is not None:
        path = base / "trt" / key
        _empty_if_cold(mode, path)
        cache.update(kind="tensorrt-engine", path=str(path), hit=_nonempty(path))
        path.mkdir(parents=True, exist_ok=True)
        d = spec.to_dict()
        popts = d["provider_options"].setdefault(trt, {})
        popts.update(trt_engine_cache_enable="1", trt_engine_cache_path=str(path))
        return RunSpec.from_dict(d), {"mode": mode, "cache": cache}
    if runner.name == "onnxruntime":
        path = base / "ort" / f"{key}.onnx"
        if mode == "cold":
            path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        hit = path.is_file()
        cache.update(kind="ort-optimized-model", path=str(path), hit=hit)
        runner.optimized_cache = (path, hit)
        return spec, {"mode": mode, "cache": cache}
    if spec.env.get(VX_ENABLE) == "1" or os.environ.get(VX_ENABLE) == "1":
        path = base / "vx" / key
        _empty_if_cold(mode, path)
        cache.update(kind="vx-graph", path=str(path), hit=_nonempty(path))
        path.mkdir(parents=True, exist_ok=True)
        os.environ[VX_ENABLE] = "1"
        os.environ[VX_DIR] = str(path)  # read by the delegate when it loads, after this
        return spec, {"mode": mode, "cache": cache}
    cache["note"] = "this runtime keeps no cache: a warm start differs only by the OS file cache"
    return spec, {"mode": mode, "cache": cache}


def _empty_if_cold(mode: str | None, path: Path) -> None:
    if mode == "cold" and path.exists():
        shutil.rmtree(path)


def finish(start: dict[str, Any]) -> dict[str, Any]:
    """After the load: whether the start left a cache behind (``written``)."""
    cache = start["cache"]
    path = Path(cache["path"]) if cache.get("path") else None
    if path is not None and cache["kind"] != "tidl-artifacts":
        cache["written"] = path.is_file() or _nonempty(path)
        if start["mode"] == "warm" and cache.get("hit") is False:
            cache["note"] = "the cache was empty: this start built it"
    return start
