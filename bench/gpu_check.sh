#!/usr/bin/env bash
# bench/gpu_check.sh: the CUDA and TensorRT execution-provider path, for real,
# on a machine with an NVIDIA GPU (issue 23, section 5). Self-contained: it
# makes its own onnxruntime-gpu venv, builds its models with the project's own
# code, and writes every result under bench/results/gpu/. Nothing in
# `make test` needs a GPU or this script.
#
#   bench/gpu_check.sh                     # pip from the index
#   WHEELS=/path/to/wheelhouse bench/gpu_check.sh   # offline: pip --no-index
#   VENV=.venv-gpu PYTHON=python3.11 DURATION=3 bench/gpu_check.sh
#
# Steps (each writes <step>.json and <step>.txt; summary.txt lists them all):
#   1. bench on CUDA, and on TensorRT (engine cache cold then warm: --start both)
#   2. CUDA's libraries left out: ORT drops the CUDA EP, the run goes on on CPU,
#      the fallback is recorded and --fail-on-fallback makes it exit 3
#   3. an INT8 QDQ model on TensorRT, validated against the float reference
#   4. a short sweep (threads x provider) when `bench --sweep` exists, else the
#      same points as single benches
# Exit status: 0 when every step ran as expected, 1 otherwise (summary.txt says which).
#
# Requirements met by pip alone on CUDA 12 drivers: onnxruntime-gpu with its
# [cuda,cudnn] extras (the nvidia-* runtime wheels; ORT's CUDA EP docs,
# "Preload DLLs") and tensorrt-cu12 for the TensorRT EP's libnvinfer. Their
# lib folders go on LD_LIBRARY_PATH for the agent's worker processes.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT_DIR:-$ROOT/bench/results/gpu}"
VENV="${VENV:-$ROOT/.venv-gpu}"
PYTHON="${PYTHON:-python3}"
DURATION="${DURATION:-3}"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi missing or failing); nothing to check" >&2
  exit 2
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/edgebench-gpu.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
failures=0

say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv >"$OUT/gpu.csv"
say "gpu: $(tail -n +2 "$OUT/gpu.csv" | head -1)"

# -- 1. the venv -----------------------------------------------------------------
pip_args=(-q)
if [[ -n "${WHEELS:-}" ]]; then
  pip_args+=(--no-index --find-links "$WHEELS")
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install "${pip_args[@]}" --upgrade pip setuptools wheel >/dev/null
# the project without its [onnx] extra: that would pull the CPU onnxruntime over the GPU one
"$VENV/bin/pip" install "${pip_args[@]}" -e ".[controller]" "onnx>=1.15" "sympy>=1.12"
"$VENV/bin/pip" uninstall -q -y onnxruntime >/dev/null 2>&1 || true
"$VENV/bin/pip" install "${pip_args[@]}" "onnxruntime-gpu[cuda,cudnn]" tensorrt-cu12
PY="$VENV/bin/python"
EB="$VENV/bin/edgebench"

# the nvidia-* and tensorrt wheels' shared libraries, for ORT's provider libraries
libs="$("$PY" - <<'EOF'
import glob, os, site
dirs = []
for sp in site.getsitepackages():
    dirs += glob.glob(os.path.join(sp, "nvidia", "*", "lib"))
    dirs += glob.glob(os.path.join(sp, "tensorrt_libs"))
    dirs += glob.glob(os.path.join(sp, "tensorrt"))
print(":".join(d for d in dirs if os.path.isdir(d)))
EOF
)"
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export EDGEBENCH_HOME="$WORK/home" EDGEBENCH_DB="sqlite:///$WORK/results.db"
"$PY" -c 'import onnxruntime as o; print(o.__version__, o.get_available_providers())' | tee "$OUT/ort.txt"
say "onnxruntime: $(cat "$OUT/ort.txt")"

# -- models and data, made by the project's own code ------------------------------
"$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path

import numpy as np

from controller.models.onnx_cnn import build_cnn

work = Path(sys.argv[1])
build_cnn(work / "cnn.onnx", size=128, widths=(16, 32, 64, 128), blocks=1, classes=100)
build_cnn(work / "cnn_dyn.onnx", size=128, widths=(16, 32, 64, 128), blocks=1, classes=100, batch="N")
rng = np.random.default_rng(0)
# calibration and validation samples: one inference each, first axis = samples
np.savez(work / "cal.npz", image=rng.uniform(0, 1, (32, 1, 3, 128, 128)).astype(np.float32))
np.savez(work / "val.npz", image=rng.uniform(0, 1, (16, 1, 3, 128, 128)).astype(np.float32))
np.savez(work / "x.npz", image=rng.uniform(0, 1, (1, 3, 128, 128)).astype(np.float32))
EOF

FAST=(--warmup 1 --duration "$DURATION" --min-iterations 50 --quiet --inputs "$WORK/x.npz")

# step NAME EXPECTED_RC CMD...: run one edgebench command, keep its output and JSON
step() {
  local name="$1" want="$2"
  shift 2
  local rc=0
  "$@" --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || rc=$?
  if [[ "$rc" == "$want" ]]; then
    say "ok    $name (exit $rc)"
  else
    say "FAIL  $name: exit $rc, expected $want (see $name.txt)"
    failures=$((failures + 1))
  fi
}

# placement must name the GPU provider for the graph's nodes: read it from the JSON
placed_on() {
  local name="$1" device="$2"
  if "$PY" - "$OUT/$name.json" "$device" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
docs = doc.get("starts") or [doc]
for d in docs:
    nodes = (d.get("placement") or {}).get("nodes") or []
    on = sum(1 for n in nodes if n.get("device") == sys.argv[2])
    print(f"{sys.argv[2]}: {on} of {len(nodes)} nodes; fallback {d.get('placement', {}).get('fallback')}")
    sys.exit(0 if nodes and on > 0 else 1)
EOF
  then
    say "ok    $name placement on $device"
  else
    say "FAIL  $name: no node placed on $device"
    failures=$((failures + 1))
  fi
}

# -- 2. bench on CUDA and TensorRT ------------------------------------------------
step bench_cuda 0 "$EB" bench "$WORK/cnn.onnx" --provider cuda --provider cpu "${FAST[@]}"
placed_on bench_cuda CUDA
step bench_tensorrt 0 "$EB" bench "$WORK/cnn.onnx" --provider tensorrt --provider cuda --provider cpu \
  --start both "${FAST[@]}"
placed_on bench_tensorrt TensorRT

# -- 3. a provider left out: CUDA -> CPU fallback recorded -------------------------
# The CUDA libraries left off the loader path: ORT cannot create the CUDA EP, logs
# "Failed to create CUDAExecutionProvider" and runs on CPU; the result must record
# the dropped provider, and --fail-on-fallback turn it into the gate's exit 3.
LD_LIBRARY_PATH="" step fallback_cuda_to_cpu 3 "$EB" bench "$WORK/cnn.onnx" --provider cuda --provider cpu \
  --fail-on-fallback "${FAST[@]}"
if "$PY" - "$OUT/fallback_cuda_to_cpu.json" <<'EOF' | tee -a "$SUMMARY"
import json, sys
p = json.load(open(sys.argv[1])).get("placement") or {}
dropped = [d.get("provider") for d in p.get("dropped_providers") or []]
print(f"      dropped providers: {dropped}; fallback {p.get('fallback')}")
sys.exit(0 if "CUDAExecutionProvider" in dropped and p.get("fallback") else 1)
EOF
then
  say "ok    fallback_cuda_to_cpu recorded"
else
  say "FAIL  fallback_cuda_to_cpu: the dropped CUDA provider is not in the result"
  failures=$((failures + 1))
fi

# -- 4. INT8 QDQ on TensorRT, validated against the float reference ----------------
if ! "$EB" reference "$WORK/cnn.onnx" --inputs "$WORK/val.npz" --out "$WORK/ref.npz" >"$OUT/reference.txt" 2>&1; then
  say "FAIL  reference (see reference.txt)"
  failures=$((failures + 1))
fi
step quantize_int8 0 "$EB" quantize "$WORK/cnn.onnx" --calibration "$WORK/cal.npz" --preset tensorrt \
  --out "$WORK/cnn_int8.onnx"
step validate_int8_tensorrt 0 "$EB" validate "$WORK/cnn_int8.onnx" --reference "$WORK/ref.npz" \
  --provider tensorrt --provider-opt tensorrt:trt_int8_enable=1 --provider cuda --provider cpu \
  --min-cosine 0.98 --quiet
placed_on validate_int8_tensorrt TensorRT

# -- 5. a short sweep --------------------------------------------------------------
if "$EB" bench --help 2>/dev/null | grep -q -- '--sweep'; then
  step sweep 0 "$EB" bench "$WORK/cnn_dyn.onnx" --sweep provider=cuda,tensorrt --sweep batch=1,8 \
    --warmup 1 --duration "$DURATION" --quiet
else
  for prov in cuda tensorrt; do
    for batch in 1 8; do
      step "sweep_${prov}_b${batch}" 0 "$EB" bench "$WORK/cnn_dyn.onnx" --provider "$prov" --provider cpu \
        --input-shape "image=${batch}x3x128x128" --warmup 1 --duration "$DURATION" --quiet \
        --label sweep=gpu-check
    done
  done
fi

say "results in $OUT ($failures failure(s))"
[[ "$failures" == 0 ]]
