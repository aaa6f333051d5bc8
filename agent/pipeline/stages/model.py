"""model: any model, runtime and accelerator a bench takes, run on the tensor
the stage before gives (a batch of crops runs as one batch). Its input shape
is checked against the model's declared one on the first frame, so shapes
that do not connect are a bad input naming both."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BadInput
from agent.pipeline.stages.base import Item, Stage, _shape
from agent.spec import RunSpec


class ModelStage(Stage):
    kind = "model"

    def __init__(self, opts: dict[str, Any], ctx: dict[str, Any]) -> None:
        super().__init__(opts, ctx)
        from agent.load.open_model import open_model

        top: RunSpec = ctx["spec"]
        # a stage that names no provider or delegate takes the run's (--provider,
        # --delegate, --accelerator as the agent resolved it), for its model's format
        onnx = opts["model_name"].lower().endswith(".onnx")
        inherit = not (opts["runtime"] or opts["providers"] or opts["delegate"])
        spec = RunSpec(
            kind="pipeline",  # dynamic dimensions take the shapes the stage before gives
            model_sha256=opts["model_sha256"],
            model_name=opts["model_name"],
            runtime=opts["runtime"],
            providers=list(top.providers if inherit and onnx else opts["providers"]),
            provider_options=dict(top.provider_options if inherit and onnx else opts["provider_options"]),
            delegate=top.delegate if inherit and not onnx else opts["delegate"],
            delegate_options=dict(top.delegate_options) if inherit and not onnx else {},
            threads=opts["threads"] or top.threads,
            graph_optimization_level=top.graph_optimization_level,
            strict_placement=top.strict_placement,
            env=dict(top.env),
        )
        self.runner, self.path, self.format, self.init_ms = open_model(spec, Path(ctx["run_dir"]))
        ins = self.runner.input_specs()
        if len(ins) != 1:
            names = ", ".join(i.name for i in ins)
            raise BadInput(
                f"{self.where}: a pipeline model takes one input; {opts['model_name']} has {names}"
            )
        self.input = ins[0]
        self.backend = self.runner.name
        self.feeds: Any = None  # the runner's own feed form (a dict for ORT, index pairs for LiteRT)
        self.checked: tuple[int, ...] | None = None
        self.shape: tuple[int, ...] | None = None  # the shape the runner was last given
        self.calls = 0

    def _check(self, x: np.ndarray) -> None:
        declared = list(self.input.declared_shape)
        dims_ok = len(declared) == x.ndim and all(
            not isinstance(d, int) or d <= 0 or d == s for d, s in zip(declared, x.shape, strict=True)
        )
        if not dims_ok:
            want = "x".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in declared)
            raise BadInput(
                f"{self.where}: {self.opts['model_name']} input {self.input.name} takes {want}, "
                f"the stage before gives {_shape(x.shape)}"
            )
        if x.dtype != self.input.dtype:
            raise BadInput(
                f"{self.where}: {self.opts['model_name']} input {self.input.name} takes {self.input.dtype}, "
                f"the stage before gives {x.dtype} (normalize dtype)"
            )
        self.checked = tuple(x.shape[1:])

    def __call__(self, item: Item) -> Item:
        x = item.value
        if not isinstance(x, np.ndarray):
            raise BadInput(f"{self.where}: expects a tensor, gets {type(x).__name__}")
        if tuple(x.shape[1:]) != self.checked:
            self._check(x)
        self.items = int(x.shape[0])
        if not self.items:  # no crops this frame: nothing to run
            item.value = []
            return item
        if x.shape != self.shape:
            # a new batch (crops) or size: LiteRT resizes its tensors, ORT takes it as it is
            self.runner.resize_inputs({self.input.name: list(x.shape)})
            self.shape = x.shape
        self.feeds = self.runner.feeds({self.input.name: x})
        nchw = x.ndim == 4 and x.shape[1] in (1, 3)
        item.extra["input_hw"] = (
            (int(x.shape[2]), int(x.shape[3])) if nchw else (int(x.shape[1]), int(x.shape[2]))
        )
        item.value = self.runner.run(self.feeds)
        self.calls += 1
        return item

    def alone(self, seconds: float, min_calls: int = 2) -> dict[str, Any] | None:
        """This model back to back on the last frame's tensor: what a bench of
        it alone gives, beside the application's rate."""
        if self.feeds is None:
            return None
        run, feeds = self.runner.run, self.feeds
        batch = int(self.shape[0]) if self.shape else 1
        n, t0 = 0, time.perf_counter_ns()
        end = t0 + int(seconds * 1e9)
        while True:
            run(feeds)
            n += 1
            t = time.perf_counter_ns()
            if t >= end and n >= min_calls:
                break
        span = (t - t0) / 1e9
        return {"calls": n, "batch": batch, "calls_per_s": n / span, "items_per_s": n * batch / span}

    def placement(self) -> dict[str, Any] | None:
        if self.feeds is None:
            return None
        try:
            return self.runner.placement(self.feeds)
        except BadInput:
            raise
        except Exception as exc:  # placement is a report, never the run's failure
            return {"runtime": self.runner.name, "error": f"{type(exc).__name__}: {exc}"[:300]}

    def characters(self) -> list[str] | None:
        """The recogniser's character list from the model's metadata (PP-OCR
        exports keep it under ``character``, one per line), when it has one."""
        session = getattr(self.runner, "session", None)
        if session is None:
            return None
        meta = session.get_modelmeta().custom_metadata_map
        text = meta.get("character")
        return text.splitlines() if text else None

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": {
                "name": self.opts["model_name"],
                "sha256": self.opts["model_sha256"],
                "format": self.format,
            },
            "runtime": self.runner.info(),
            "init_ms": self.init_ms,
            "input": {"name": self.input.name, "dtype": str(self.input.dtype)},
        }

    def close(self) -> None:
        self.runner.close()
