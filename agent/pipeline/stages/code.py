"""code: a user's Python function, pushed as an artifact, called on each
frame's data in the worker. It executes the user's code with the agent's
rights, so the agent runs it only when started with ``--allow-code``
(RunManager.start refuses the run otherwise, before it exists).

The function is ``stage(value, frame)`` -> the new value; ``frame`` is the
frame as it arrived (uint8 HxWx3). Items per frame: ``len(value)`` when the
result has a length, else 1."""

from __future__ import annotations

import importlib.util
from importlib.machinery import SourceFileLoader
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from agent.pipeline.stages.base import Item, Stage
from agent.store.paths import locate_artifact


class CodeStage(Stage):
    kind = "code"
    backend = "python"

    def __init__(self, opts: dict[str, Any], ctx: dict[str, Any]) -> None:
        super().__init__(opts, ctx)
        path = locate_artifact(Path(ctx["run_dir"]), opts["code_sha256"], "code")
        name = f"edgebench_user_stage_{ctx['index']}"
        # the stored artifact has no .py suffix: name the source loader outright
        spec = importlib.util.spec_from_file_location(name, path, loader=SourceFileLoader(name, str(path)))
        if spec is None or spec.loader is None:
            raise BadInput(f"{self.where}: cannot load {opts['code_name']} as Python")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's module: its error, in one line
            raise BadInput(
                f"{self.where}: {opts['code_name']} failed to import: {type(exc).__name__}: {exc}"
            ) from None
        fn = getattr(module, opts["function"], None)
        if not callable(fn):
            raise BadInput(f"{self.where}: {opts['code_name']} has no function {opts['function']}()")
        self.fn = fn

    def __call__(self, item: Item) -> Item:
        item.value = self.fn(item.value, item.frame)
        try:
            self.items = len(item.value)
        except TypeError:
            self.items = 1
        return item
