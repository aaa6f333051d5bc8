"""A fleet plan (plan.yaml): jobs of models x selected boards, with run
options and gates. A bad plan is refused (BadInput, exit 2) naming its line,
before anything is pushed or stored.

    inventory: boards.yaml           # relative to the plan file
    jobs:
      - name: cls-bench
        kind: bench                    # bench | soak | validate | placement | sweep | pipeline
        models: [cls.onnx]             # relative to the plan file
        boards: {labels: {site: lab-2}}   # or {names: [...]}, {profiles: [...]}, {all: true}
        options: {duration: 2s, input_shape: {x: 1x3x48x192}}
        gates: {min_throughput_ips: 100}

A work item is one (job, model, board): the unit that runs, is stored once
and is resumed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from controller.fleet import gates as fleet_gates
from controller.fleet import inventory, options, yamlpos
from controller.fleet.inventory import Board

_JOB_KEYS = {"name", "kind", "models", "boards", "options", "gates"}
# agent.schema nodes for the keys a plan and a job may have; each value is
# checked below, in its own words
PLAN = {"fields": {"inventory": (object, False), "jobs": (object, False), "name": (object, False)}}
JOB = {"fields": {k: (object, False) for k in sorted(_JOB_KEYS)}}
_SELECTORS = {"labels", "names", "profiles", "all", "tags"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Selector:
    """Which boards a job runs on. Several keys narrow together (AND)."""

    labels: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # labgrid place tags
    all: bool = False

    def matches(self, board: Board, profile: str | None) -> bool:
        """``profile``: the board's expected profile, else the one its agent reports."""
        if self.names and board.name not in self.names:
            return False
        if any(board.labels.get(k) != v for k, v in self.labels.items()):
            return False
        if self.profiles and (profile or board.profile) not in self.profiles:
            return False
        # labgrid tags ride in the board's labels (controller/fleet/labgrid.py fills them)
        return all(board.labels.get(k) == v for k, v in self.tags.items())

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass
class Job:
    name: str
    kind: str
    models: list[str]  # absolute paths
    selector: Selector
    options: dict[str, Any]
    gates: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["selector"] = self.selector.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        return cls(**{**d, "selector": Selector(**d["selector"])})


@dataclass
class Plan:
    path: Path
    inventory_path: Path | None
    boards: list[Board]
    jobs: list[Job]

    @property
    def base(self) -> Path:
        return self.path.resolve().parent


def load(path: str | Path, boards: list[Board] | None = None) -> Plan:
    """Read and check a plan; ``boards`` replaces its inventory (labgrid places)."""
    path = Path(path)
    doc = yamlpos.load(path)
    base = path.resolve().parent
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise doc.error((), "a plan needs 'jobs:', a non-empty list")
    doc.check((), PLAN, lambda e: f"unknown plan key {str(e.path[-1][1])!r} (known: inventory, jobs, name)")
    inv_path = None
    if boards is None:
        if not isinstance(data.get("inventory"), str):
            raise doc.error(
                ("inventory",), "a plan needs 'inventory: boards.yaml' (or run it with --labgrid)"
            )
        inv_path = base / data["inventory"]
        if not inv_path.is_file():
            raise doc.error(("inventory",), f"inventory not found: {inv_path}")
        boards = inventory.load(inv_path)
    jobs: list[Job] = []
    names: set[str] = set()
    for i, j in enumerate(data["jobs"]):
        for job in _jobs(doc, ("jobs", i), j, base, {b.name for b in boards}):
            if job.name in names:
                raise doc.error(("jobs", i, "name"), f"job {job.name!r} defined twice")
            names.add(job.name)
            jobs.append(job)
    return Plan(path, inv_path, boards, jobs)


def _jobs(doc: yamlpos.Doc, key: tuple, j: Any, base: Path, board_names: set[str]) -> list[Job]:
    """The job, or a sweep job's bench job per point (controller/fleet/sweep.py)."""
    if not (isinstance(j, dict) and j.get("kind") == "sweep"):
        return [_job(doc, key, j, base, board_names)]
    from controller.fleet import sweep

    first = _job(doc, key, {**j, "kind": "bench", "options": _no_sweep(j.get("options"))}, base, board_names)
    try:
        points = sweep.expand(first.name, dict(j.get("options") or {}), first.models, base)
    except options.OptionError as exc:
        okey = (*key, "options", exc.key) if exc.key else (*key, "options")
        raise doc.error(okey, f"job {first.name}: {exc}") from None
    return [Job(name, "bench", first.models, first.selector, opts, first.gates) for name, opts in points]


def _no_sweep(opts: Any) -> Any:
    return {k: v for k, v in opts.items() if k != "sweep"} if isinstance(opts, dict) else opts


def _job(doc: yamlpos.Doc, key: tuple, j: Any, base: Path, board_names: set[str]) -> Job:
    if not isinstance(j, dict):
        raise doc.error(key, "a job is a mapping: name, kind, models, boards, options, gates")
    known = ", ".join(sorted(_JOB_KEYS))
    doc.check(key, JOB, lambda e: f"unknown job key {str(e.path[-1][1])!r} (known: {known})")
    name = j.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise doc.error((*key, "name"), f"job name must be letters, digits, '.', '_', '-': got {name!r}")
    kind = j.get("kind", "bench")
    if kind not in options.KINDS:
        known = ", ".join([*options.KINDS, "sweep"])
        raise doc.error((*key, "kind"), f"job {name}: kind must be one of {known}, got {kind!r}")
    if kind == "bench" and isinstance(j.get("options"), dict) and j["options"].get("sweep"):
        raise doc.error((*key, "options", "sweep"), f"job {name}: a sweep is its own job kind: kind: sweep")
    models = j.get("models")
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise doc.error((*key, "models"), f"job {name}: models must be a list of model files")
    paths = []
    for m_i, m in enumerate(models):
        p = (base / m).resolve()
        if not p.is_file():
            raise doc.error((*key, "models", m_i), f"job {name}: model file not found: {m}")
        paths.append(str(p))
    sel = _selector(doc, (*key, "boards"), j.get("boards"), name, board_names)
    opts = j.get("options") or {}
    if not isinstance(opts, dict):
        raise doc.error((*key, "options"), f"job {name}: options must be a mapping of run options")
    for p in paths:  # parsed now so a bad option fails before anything moves
        try:
            options.parse(kind, opts, p, base)
        except options.OptionError as exc:
            okey = (*key, "options", exc.key) if exc.key else (*key, "options")
            raise doc.error(okey, f"job {name}: {exc}") from None
        if kind == "pipeline":  # a bad pipeline file fails here too, before anything moves
            from controller.pipeline.load import load as load_pipeline

            try:
                load_pipeline(p)
            except BadInput as exc:
                raise doc.error((*key, "models"), f"job {name}: {exc}") from None
    gates = j.get("gates") or {}
    problem = fleet_gates.check(gates)
    if problem:
        raise doc.error((*key, "gates"), f"job {name}: {problem}")
    return Job(name, kind, paths, sel, opts, {k: float(v) for k, v in gates.items()})


def _selector(doc: yamlpos.Doc, key: tuple, s: Any, job: str, board_names: set[str]) -> Selector:
    if s is None:
        raise doc.error(
            key[:-1], f"job {job}: needs boards: {{names|labels|profiles|tags: ...}} or {{all: true}}"
        )
    if not isinstance(s, dict) or not s or set(map(str, s)) - _SELECTORS:
        raise doc.error(key, f"job {job}: boards must be a mapping of {', '.join(sorted(_SELECTORS))}")
    sel = Selector()
    for k, v in s.items():
        if k in ("labels", "tags"):
            if not isinstance(v, dict) or not v:
                raise doc.error((*key, k), f"job {job}: boards.{k} must be a mapping, e.g. {{site: lab-2}}")
            setattr(sel, k, {str(a): str(b) for a, b in v.items()})
        elif k in ("names", "profiles"):
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
                raise doc.error((*key, k), f"job {job}: boards.{k} must be a list of strings")
            if k == "names":
                missing = [x for x in v if x not in board_names]
                if missing:
                    raise doc.error((*key, k), f"job {job}: no board named {missing[0]!r} in the inventory")
            setattr(sel, k, list(v))
        elif k == "all":
            if v is not True:
                raise doc.error((*key, k), f"job {job}: boards.all must be true")
            sel.all = True
    return sel


def no_match(plan: Plan, job: Job) -> BadInput:
    return BadInput(f"{plan.path}: job {job.name}: its board selector matches no board")
