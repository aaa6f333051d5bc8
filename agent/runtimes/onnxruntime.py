"""ONNX Runtime runner: ordered providers with per-provider options, session
options (threads, graph optimization level), dynamic dims from --input-shape.

Works with any ``onnxruntime*`` distribution (onnxruntime-gpu, -openvino, a
vendor build): all of them install the ``onnxruntime`` module.

Provider rules:
- a name ORT does not know at all -> BadInput naming the available ones;
- a known provider this build lacks -> BadInput, unless the request also lists
  CPUExecutionProvider: then the user allowed CPU, the run goes on and the
  dropped provider is reported as a placement fallback (never silently).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent import onnx_proto
from agent.errors import BadInput, RunFailed
from agent.names import canonical_provider
from agent.placement import onnxruntime as ort_placement
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

CPU = "CPUExecutionProvider"

_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


class OrtRunner:
    name = "onnxruntime"

    def __init__(self) -> None:
        import onnxruntime as ort  # lazy: only worker processes pay for it

        self.ort = ort
        self.session: Any = None
        self.model_path: Path | None = None
        self.spec: RunSpec | None = None
        self.requested: list[str] = []  # canonical, in order
        self.dropped: list[dict[str, str]] = []  # [{provider, reason}]
        self.use: list[str] = []  # what the session is given: requested and available
        self.provider_options: list[dict[str, str]] = []
        self.strict_note: str | None = None  # what --strict-placement did, when not the plain case
        self._inputs: list[InputSpec] = []
        self._run: Any = None
        # --start: (ORT's optimized-model file, load it) set by agent.runtimes.cache
        self.optimized_cache: tuple[Path, bool] | None = None

    # -- load --------------------------------------------------------------
    def _providers(self, spec: RunSpec) -> tuple[list[str], list[dict[str, str]]]:
        ort = self.ort
        known = list(ort.get_all_providers())
        available = list(ort.get_available_providers())
        wanted = spec.providers or [CPU]
        canon: list[str] = []
        for name in wanted:
            c = canonical_provider(name, known) or canonical_provider(name, available)
            if c is None:
                raise BadInput(f"unknown provider {name!r}; available: {', '.join(available)}")
            if c not in canon:
                canon.append(c)
        opts_by_name: dict[str, dict[str, str]] = {}
        for name, opts in (spec.provider_options or {}).items():
            c = canonical_provider(name, known) or canonical_provider(name, available)
            if c is None or c not in canon:
                raise BadInput(f"options given for provider {name!r}, which is not requested")
            # tensorrt:K=V and TensorrtExecutionProvider:K=V name one provider: merge
            opts_by_name.setdefault(c, {}).update({str(k): str(v) for k, v in opts.items()})
        self.requested = list(canon)
        missing = [c for c in canon if c not in available]
        if missing and CPU not in canon:
            raise BadInput(
                f"provider {missing[0]} is not available in this onnxruntime build; "
                f"available: {', '.join(available)}"
            )
        self.dropped = [{"provider": m, "reason": "not available in this onnxruntime build"} for m in missing]
        use = [c for c in canon if c in available]
        return use, [opts_by_name.get(c, {}) for c in use]

    def _session_options(self, spec: RunSpec) -> Any:
        so = self.ort.SessionOptions()
        if spec.threads:
            so.intra_op_num_threads = int(spec.threads)
        level = _OPT_LEVELS.get(spec.graph_optimization_level)
        if level is None:
            raise BadInput(
                f"unknown graph optimization level {spec.graph_optimization_level!r}; "
                f"expected one of {', '.join(_OPT_LEVELS)}"
            )
        lvl = getattr(self.ort.GraphOptimizationLevel, level, None)
        if lvl is None:  # older ORT has no LAYOUT level
            lvl = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.graph_optimization_level = lvl
        if spec.strict_placement and self.use != [CPU]:
            # an unplaceable node then fails the load instead of running on CPU
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        return so

    def _strict(self, spec: RunSpec) -> None:
        """--strict-placement refuses CPU fallback. With the CPU EP alone there
        is no fallback to refuse (ORT would reject the session: "Conflicting
        session configuration: explicitly added the CPU EP ... but also
        disabled fallback"): it is then a no-op, said in the runtime info. With
        accelerators, an explicit CPU EP is the fallback strictness refuses:
        it is left out of the session."""
        if not spec.strict_placement:
            return
        if self.use == [CPU]:
            self.strict_note = "no-op: only the CPU execution provider, so no CPU fallback to refuse"
            return
        keep = [i for i, p in enumerate(self.use) if p != CPU]
        if len(keep) < len(self.use):
            self.strict_note = "the CPU execution provider is left out: strict placement refuses CPU fallback"
        self.use = [self.use[i] for i in keep]
        self.provider_options = [self.provider_options[i] for i in keep]

    def _create(self, so: Any, path: Path | None = None) -> Any:
        assert self.model_path is not None
        try:
            return self.ort.InferenceSession(
                str(path or self.model_path),
                sess_options=so,
                providers=self.use,
                provider_options=self.provider_options,
            )
        except Exception as exc:
            raise self._load_error(exc) from None

    def _load_error(self, exc: Exception) -> Exception:
        assert self.model_path is not None and self.spec is not None
        msg = " ".join(str(exc).split())
        kind = type(exc).__name__
        name = self.spec.model_name
        if kind in ("InvalidProtobuf", "InvalidGraph", "NoSuchFile") or "Protobuf parsing failed" in msg:
            why = onnx_proto.check_whole(self.model_path)
            if why and why.startswith("truncated"):
                return BadInput(f"truncated ONNX file {name}: {why}")
            if why:
                return BadInput(f"not a model file: {name} is {why}")
            return BadInput(f"malformed ONNX model {name}: {_short(msg)}")
        if self.spec.strict_placement:
            return RunFailed(f"strict placement: onnxruntime could not place every node: {_short(msg)}")
        return BadInput(f"onnxruntime could not load {name}: {_short(msg)}")

    def load(self, model_path: Path, spec: RunSpec) -> float:
        self.model_path, self.spec = Path(model_path), spec
        self.use, self.provider_options = self._providers(spec)
        self._strict(spec)
        so = self._session_options(spec)
        load_path = None
        if self.optimized_cache is not None:
            cached, use = self.optimized_cache
            if use:  # warm: the graph saved by a cold start, already optimized
                load_path = cached
                so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            else:  # cold: optimize, and save the result for the warm start
                so.optimized_model_filepath = str(cached)
        t0 = time.perf_counter_ns()
        self.session = self._create(so, load_path)
        init_ms = (time.perf_counter_ns() - t0) / 1e6
        got = list(self.session.get_providers())
        for p in self.use:
            if p not in got:  # ORT dropped it, e.g. EP creation failed and it fell back
                self.dropped.append({"provider": p, "reason": "dropped by onnxruntime at session creation"})
        self._inputs = self._resolve_inputs(spec)
        self._run = self.session.run
        return init_ms

    def _resolve_inputs(self, spec: RunSpec) -> list[InputSpec]:
        metas = self.session.get_inputs()
        check_shape_names(spec.input_shapes, [m.name for m in metas])
        out = []
        for m in metas:
            # symbols stay strings: the error for a dynamic dimension names them
            declared = [d if isinstance(d, (int, str)) else None for d in m.shape]
            shape = resolve_shape(
                m.name,
                declared,
                spec.input_shapes.get(m.name),
                dynamic_ok=spec.kind == "validate",
                batch=spec.batch,
            )
            dtype = _ORT_DTYPES.get(m.type)
            if dtype is None:
                raise BadInput(f"input {m.name!r} has unsupported type {m.type}")
            out.append(InputSpec(m.name, shape, np.dtype(dtype), None, list(m.shape)))
        return out

    # -- run ---------------------------------------------------------------
    def input_specs(self) -> list[InputSpec]:
        return list(self._inputs)

    def make_inputs(self, spec: RunSpec, npz: Path | None) -> dict[str, np.ndarray]:
        if npz is not None:
            from agent.runtimes.inputs import stack_batch

            arrays = stack_batch(self._inputs, npz_arrays(npz), spec.batch)
            return check_feeds(self._inputs, arrays, "the inputs file")
        from agent.runtimes.inputs import random_inputs

        return random_inputs(self._inputs)

    def output_specs(self) -> list[OutputSpec]:
        # QDQ models end in DequantizeLinear: their outputs are float. An integer
        # output's (scale, zero point) is in the graph, which the agent does not
        # parse: the controller reads it and sends it with a validate spec.
        return [
            OutputSpec(o.name, np.dtype(_ORT_DTYPES.get(o.type, np.float32)))
            for o in self.session.get_outputs()
        ]

    def resize_inputs(self, shapes: dict[str, list[int]]) -> None:
        self._inputs = [
            InputSpec(i.name, list(shapes.get(i.name, i.shape)), i.dtype, i.quantization, i.declared_shape)
            for i in self._inputs
        ]

    def feeds(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return check_feeds(self._inputs, arrays, "the inputs file")

    def run(self, feeds: dict[str, np.ndarray]) -> Any:
        return self._run(None, feeds)

    def first_run(self, feeds: dict[str, np.ndarray]) -> Any:
        """The cold inference: shape errors surface here as BadInput."""
        try:
            return self._run(None, feeds)
        except Exception as exc:
            msg = _short(" ".join(str(exc).split()))
            # bad input only when the feeds break the model's declared inputs;
            # a node that fails on inputs the model declares valid (an inner
            # Reshape that cannot be done) is the model's failure
            mismatch = _declared_mismatch(self._inputs, feeds)
            if mismatch is not None or (type(exc).__name__ == "InvalidArgument" and "for input" in msg):
                raise BadInput(f"wrong input shape: {mismatch or msg}") from None
            raise RunFailed(f"first inference failed inside the model: {msg}") from None

    # -- placement ---------------------------------------------------------
    def placement(self, feeds: dict[str, np.ndarray], log_text: str = "") -> dict:
        """A short profiled pass in its own session (so profiling never touches
        the measured session), with verbose logging for the cross-check."""
        import tempfile

        assert self.spec is not None and self.model_path is not None
        so = self._session_options(self.spec)
        so.enable_profiling = True
        so.log_severity_level = 0  # verbose: ORT logs its "Node placements" table
        with tempfile.TemporaryDirectory(prefix="edgebench-prof-") as tmp:
            so.profile_file_prefix = os.path.join(tmp, "ort")
            with capture_stderr() as captured:
                sess = self._create(so)
                try:
                    run = sess.run
                    t_end = time.monotonic() + 1.0
                    for i in range(10):  # a few iterations, at most ~1 s after the first
                        run(None, feeds)
                        if i >= 2 and time.monotonic() > t_end:
                            break
                finally:
                    prof = sess.end_profiling()
                    got = list(sess.get_providers())
            events = ort_placement.load_profile(Path(prof))
        return ort_placement.build(
            events=events,
            graph_nodes=_graph_nodes(self.model_path),
            requested=self.requested,
            session_providers=got,
            dropped=self.dropped,
            log_text=captured.text + log_text,
        )

    def info(self) -> dict:
        return {
            "name": "onnxruntime",
            "version": self.ort.__version__,
            "providers": list(self.session.get_providers()) if self.session else list(self.use),
            "requested_providers": list(self.requested),
            **({"strict_placement": self.strict_note} if self.strict_note else {}),
        }

    def close(self) -> None:
        self.session = None
        self._run = None


def _graph_nodes(path: Path) -> list[onnx_proto.OnnxNode]:
    try:
        return onnx_proto.read_graph(path)[0]
    except (ValueError, UnicodeDecodeError):
        return []


def _declared_mismatch(inputs: list[InputSpec], feeds: dict[str, np.ndarray]) -> str | None:
    """How a feed breaks its input's declared shape (rank, or a fixed dimension), or None."""
    for spec in inputs:
        a = feeds.get(spec.name)
        declared = spec.declared_shape
        if a is None or not declared:  # no declared shape: nothing to break
            continue
        if len(declared) != a.ndim:
            return f"input {spec.name!r} has rank {a.ndim}; the model declares {list(declared)}"
        for k, (d, n) in enumerate(zip(declared, a.shape, strict=True)):
            if isinstance(d, int) and d > 0 and d != n:
                return f"input {spec.name!r} dimension {k} is {n}; the model declares {d}"
    return None


def _short(msg: str, limit: int = 400) -> str:
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."
