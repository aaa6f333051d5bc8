"""LiteRT runner: ``ai_edge_litert``, else a vendor ``tflite_runtime`` (NXP's
and TI's builds ship only that). External delegates (``libvx_delegate.so``,
``libtidl_tfl_delegate.so``) load through ``load_delegate(path, options)``;
without one, LiteRT applies its default XNNPACK delegate to what it supports.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput, RunFailed, one_line
from agent.placement import litert as lp
from agent.placement.logs import capture_stderr
from agent.runtimes.base import (
    InputSpec,
    OutputSpec,
    check_shape_names,
    npz_arrays,
    resolve_shape,
)
from agent.samples import check_feeds
from agent.spec import RunSpec


def interpreter_module() -> tuple[Any, str, str]:
    """(module, distribution name, version)."""
    from importlib import metadata

    try:
        from ai_edge_litert import interpreter as mod

        dist = "ai-edge-litert"
    except ImportError:
        try:
            from tflite_runtime import interpreter as mod  # type: ignore[no-redef]

            dist = "tflite-runtime"
        except ImportError:
            raise BadInput("no LiteRT runtime installed (need ai-edge-litert or tflite_runtime)") from None
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = getattr(mod, "__version__", "unknown")
    return mod, dist, version


def delegate_label(path: str | None) -> str:
    """``/usr/lib/libvx_delegate.so`` -> ``vx_delegate``; no path -> XNNPACK (the default)."""
    if not path:
        return "XNNPACK"
    stem = Path(path).name.split(".so")[0]
    return stem[3:] if stem.startswith("lib") else stem


class LiteRTRunner:
    name = "litert"

    def __init__(self) -> None:
        self.mod, self.dist, self.version = interpreter_module()
        self.interp: Any = None
        self.spec: RunSpec | None = None
        self.delegate_path: str | None = None
        self.load_log = ""
        self._inputs: list[InputSpec] = []
        self._in_idx: list[int] = []
        self._out_idx: list[int] = []

    def load(self, model_path: Path, spec: RunSpec) -> float:
        self.spec = spec
        self.delegate_path = spec.delegate
        t0 = time.perf_counter_ns()
        with capture_stderr() as cap:
            delegates = []
            if spec.delegate:
                try:
                    delegates.append(self.mod.load_delegate(spec.delegate, dict(spec.delegate_options or {})))
                except (ValueError, OSError, RuntimeError) as exc:
                    raise BadInput(f"cannot load delegate {spec.delegate}: {one_line(exc, 300)}") from None
            try:
                self.interp = self.mod.Interpreter(
                    model_path=str(model_path),
                    num_threads=spec.threads,
                    experimental_delegates=delegates or None,
                )
            except ValueError as exc:
                raise BadInput(f"not a valid TFLite model {spec.model_name}: {one_line(exc, 300)}") from None
            except RuntimeError as exc:
                raise RunFailed(f"LiteRT could not load {spec.model_name}: {one_line(exc, 300)}") from None
            self._resize(spec)
            try:
                self.interp.allocate_tensors()  # the default XNNPACK delegate applies here
            except (RuntimeError, ValueError) as exc:
                raise BadInput(f"LiteRT could not allocate tensors: {one_line(exc, 300)}") from None
        init_ms = (time.perf_counter_ns() - t0) / 1e6
        self.load_log = cap.text
        self._inputs = self._input_specs()
        self._in_idx = [d["index"] for d in self.interp.get_input_details()]
        self._out_idx = [d["index"] for d in self.interp.get_output_details()]
        return init_ms

    def _resize(self, spec: RunSpec) -> None:
        details = self.interp.get_input_details()
        check_shape_names(spec.input_shapes, [d["name"] for d in details])
        for d in details:
            sig = [int(x) for x in d.get("shape_signature", d["shape"])]
            declared: list[Any] = [x if x > 0 else None for x in sig]
            shape = resolve_shape(
                d["name"],
                declared,
                spec.input_shapes.get(d["name"]),
                dynamic_ok=spec.kind == "validate",
                batch=spec.batch,
            )
            if list(shape) != [int(x) for x in d["shape"]]:
                self.interp.resize_tensor_input(d["index"], shape, strict=False)

    def _input_specs(self) -> list[InputSpec]:
        out = []
        for d in self.interp.get_input_details():
            scale, zp = d.get("quantization", (0.0, 0))
            quant = (float(scale), int(zp)) if scale else None
            out.append(
                InputSpec(
                    d["name"],
                    [int(x) for x in d["shape"]],
                    np.dtype(d["dtype"]),
                    quant,
                    list(d["shape_signature"]),
                )
            )
        return out

    def input_specs(self) -> list[InputSpec]:
        return list(self._inputs)

    def make_inputs(self, spec: RunSpec, npz: Path | None) -> list[tuple[int, np.ndarray]]:
        if npz is not None:
            from agent.runtimes.inputs import stack_batch

            return self.feeds(stack_batch(self._inputs, npz_arrays(npz), spec.batch))
        from agent.runtimes.inputs import random_inputs

        return self._pack(random_inputs(self._inputs))

    def output_specs(self) -> list[OutputSpec]:
        out = []
        for d in self.interp.get_output_details():
            scale, zp = d.get("quantization", (0.0, 0))
            dtype = np.dtype(d["dtype"])
            quant = (float(scale), int(zp)) if scale and dtype.kind in "iu" else None
            out.append(OutputSpec(d["name"], dtype, quant))
        return out

    def resize_inputs(self, shapes: dict[str, list[int]]) -> None:
        changed = False
        for d in self.interp.get_input_details():
            want = shapes.get(d["name"])
            if want is not None and list(want) != [int(x) for x in d["shape"]]:
                self.interp.resize_tensor_input(d["index"], list(want), strict=False)
                changed = True
        if changed:
            try:
                self.interp.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise BadInput(
                    f"LiteRT could not take the reference's input shapes: {one_line(exc, 300)}"
                ) from None
            self._inputs = self._input_specs()

    def feeds(self, arrays: dict[str, np.ndarray]) -> list[tuple[int, np.ndarray]]:
        return self._pack(check_feeds(self._inputs, arrays, "the inputs file"))

    def _pack(self, feeds: dict[str, np.ndarray]) -> list[tuple[int, np.ndarray]]:
        return [(idx, feeds[s.name]) for idx, s in zip(self._in_idx, self._inputs, strict=True)]

    def run(self, feeds: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        interp = self.interp
        for idx, arr in feeds:
            interp.set_tensor(idx, arr)
        interp.invoke()
        return [interp.get_tensor(i) for i in self._out_idx]

    def first_run(self, feeds: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        try:
            return self.run(feeds)
        except ValueError as exc:
            raise BadInput(f"wrong input: {one_line(exc, 300)}") from None
        except RuntimeError as exc:
            raise RunFailed(f"first inference failed: {one_line(exc, 300)}") from None

    def placement(self, feeds: Any = None, log_text: str = "") -> dict:
        return lp.build(
            self.interp._get_ops_details(),
            delegate=delegate_label(self.delegate_path),
            external=bool(self.delegate_path),
            log_text=self.load_log + log_text,
        )

    def info(self) -> dict:
        return {
            "name": "litert",
            "version": self.version,
            "distribution": self.dist,
            "delegate": self.delegate_path or "XNNPACK (default)",
        }

    def close(self) -> None:
        self.interp = None
