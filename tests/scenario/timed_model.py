"""Models of known cost for the load-pattern tests: the worker runs the real
``agent.load.task.run_task`` (cold run, warm-up, the paced loop, the
iteration and frame files, the summary), with one part swapped: the runner,
whose inference sleeps for the time the "model" file names. A sleep is the
cost the scheduling tests need: exact, and free of the shared machine's CPU
load (issue 15 allows sleep-based models).

A model file holds ``sleep_ms=10``; ``sleep_ms=10;every=20;extra_ms=30``
adds 30 ms to every 20th inference; ``slow_file=PATH;slow_ms=25`` makes
every inference 25 ms slower once PATH exists (a board whose clock dropped).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.load import task as task_mod
from agent.runtimes.base import InputSpec


class SleepRunner:
    name = "sleep"

    def __init__(self, path: Path) -> None:
        kv = dict(p.split("=", 1) for p in Path(path).read_text().strip().split(";") if "=" in p)
        self.cost_s = float(kv.get("sleep_ms", "1")) / 1e3
        self.every = int(kv.get("every", "0"))
        self.extra_s = float(kv.get("extra_ms", "0")) / 1e3
        # a slowdown that starts when a file appears (a test's "the clock dropped")
        self.slow_file = kv.get("slow_file")
        self.slow_s = float(kv.get("slow_ms", "0")) / 1e3
        self.n = 0
        self._slow = False
        self._checked = 0.0

    def input_specs(self) -> list[InputSpec]:
        return [InputSpec("x", [1], np.dtype("float32"), None, [1])]

    def make_inputs(self, spec: Any, npz: Any) -> dict:
        return {"x": np.zeros(1, np.float32)}

    def run(self, feeds: Any) -> list:
        self.n += 1
        cost = self.cost_s
        if self.every and self.n % self.every == 0:
            cost += self.extra_s
        if self.slow_file:
            now = time.monotonic()
            if not self._slow and now - self._checked > 0.05:
                self._checked = now
                self._slow = os.path.exists(self.slow_file)
            if self._slow:
                cost += self.slow_s
        time.sleep(cost)  # a model of known cost: the behaviour under test
        return []

    def placement(self, feeds: Any, log_text: str = "") -> dict:
        return {"runtime": "sleep"}

    def info(self) -> dict:
        return {"name": "sleep", "version": "1"}

    def close(self) -> None:
        pass


def sleep_task(spec: Any, run_dir: Path, send: Any) -> Any:
    """The worker task: the real run_task with a SleepRunner for the model."""

    def open_model(spec: Any, run_dir: Path) -> tuple:
        from agent.store.paths import locate_artifact

        path = locate_artifact(run_dir, spec.model_sha256, "model")
        return SleepRunner(path), path, "onnx", 0.0

    task_mod.open_model = open_model
    return task_mod.run_task(spec, run_dir, send)


def write_model(path: Path, **kv: Any) -> Path:
    path.write_text(";".join(f"{k}={v}" for k, v in kv.items()))
    return path
