"""A run's model opened as its spec asks: the runtime for its format, the
spec's provider/delegate checked against it, the runtime cache for --start.
The bench task and a pipeline's model stage both open models here."""

from __future__ import annotations

from pathlib import Path

from agent.errors import BadInput
from agent.names import RUNTIME_OF_FORMAT, model_format
from agent.runtimes.base import Runner, make_runner
from agent.spec import RunSpec
from agent.store.paths import locate_artifact


def open_model(spec: RunSpec, run_dir: Path) -> tuple[Runner, Path, str, float]:
    """(runner, model path, format, init_ms): the model loaded as the spec asks."""
    model = locate_artifact(run_dir, spec.model_sha256, "model")
    fmt = model_format(model, spec.model_name)
    runtime = spec.runtime or RUNTIME_OF_FORMAT[fmt]
    expected = {r: f for f, r in RUNTIME_OF_FORMAT.items()}.get(runtime)
    if expected and expected != fmt:
        raise BadInput(f"runtime {runtime} cannot run a {fmt} model")
    if runtime == "litert" and (spec.providers or spec.provider_options):
        raise BadInput("--provider applies to onnxruntime; a .tflite model takes --delegate PATH")
    if runtime == "onnxruntime" and spec.delegate:
        raise BadInput("--delegate applies to litert; an ONNX model takes --provider NAME")
    runner = make_runner(runtime)
    start = None
    if spec.start is not None:  # --start cold|warm: the runtime's cache emptied or used
        from agent.runtimes import cache

        spec, start = cache.prepare(spec, run_dir, runner)
    init_ms = runner.load(model, spec)
    if start is not None:
        runner.start = cache.finish({**start, "init_ms": init_ms})
    return runner, model, fmt, init_ms
