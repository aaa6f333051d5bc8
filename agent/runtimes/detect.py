"""Which runtimes this board has, for the fingerprint. Cheap and light: versions
come from package metadata, and ONNX Runtime's provider list from a one-off
child process (cached), so the agent's main process never imports a runtime.

Any ``onnxruntime*`` distribution counts (onnxruntime-gpu, -openvino, vendor
builds); LiteRT is ``ai_edge_litert``, else ``tflite_runtime``.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from importlib import metadata

from agent.rootfs import RootFS

# external TFLite delegates as the vendor BSPs install them
KNOWN_DELEGATES = {
    "vx": ["/usr/lib/libvx_delegate.so"],  # NXP i.MX8M Plus NPU
    "tidl": ["/usr/lib/libtidl_tfl_delegate.so"],  # TI AM62A/TDA4 C7x DSP
    "ethosu": ["/usr/lib/libethosu_delegate.so"],  # NXP i.MX93
    "gpu": ["/usr/lib/libtensorflowlite_gpu_delegate.so"],
}

_PROBE = (
    "import json, onnxruntime as o; "
    "print(json.dumps({'version': o.__version__, 'providers': o.get_available_providers()}))"
)


def _dists_for(module: str) -> list[tuple[str, str]]:
    try:
        names = metadata.packages_distributions().get(module, [])
    except Exception:
        names = []
    out = []
    for n in dict.fromkeys(names):
        try:
            out.append((n, metadata.version(n)))
        except metadata.PackageNotFoundError:
            continue
    return out


@functools.lru_cache(maxsize=4)
def _ort_probe(python: str) -> dict:
    try:
        res = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
        return json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {}


def onnxruntime_info(probe: bool = True) -> dict | None:
    dists = _dists_for("onnxruntime")
    if not dists:
        return None
    name, version = dists[0]
    info: dict = {"distribution": name, "version": version}
    if probe:
        p = _ort_probe(sys.executable)
        info["providers"] = p.get("providers", [])
        if p.get("version"):
            info["version"] = p["version"]
    return info


def litert_info(root: RootFS | None = None) -> dict | None:
    for module in ("ai_edge_litert", "tflite_runtime"):
        dists = _dists_for(module)
        if dists:
            name, version = dists[0]
            break
    else:
        return None
    root = root or RootFS("/")
    delegates = {"XNNPACK": "builtin"}
    for label, paths in KNOWN_DELEGATES.items():
        for p in paths:
            if root.exists(p):
                delegates[label] = p
    return {"distribution": name, "module": module, "version": version, "delegates": delegates}


def runtime_info(root: RootFS | None = None, probe: bool = True) -> dict:
    """``{onnxruntime: {...}|absent, litert: {...}|absent, tensorrt: {...}|absent}``."""
    out: dict = {}
    ort = onnxruntime_info(probe)
    if ort:
        out["onnxruntime"] = ort
    lite = litert_info(root)
    if lite:
        out["litert"] = lite
    trt = _dists_for("tensorrt")
    if trt:
        out["tensorrt"] = {"distribution": trt[0][0], "version": trt[0][1]}
    return out
