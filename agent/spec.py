"""The run spec (``edgebench.runspec/v1``): what the controller asks an agent to
run. It travels as JSON in StartRunRequest.spec_json, is stored as
``spec.json`` in the run directory and is handed to the worker process.

Validation here catches what can be judged without loading a runtime; the
worker reports the rest (malformed model, unknown provider...) as bad input.

The field type checks are agent/spec_types.py (``agent.schema``'s walk over
these dataclasses); the command-line text forms of spec values
(``--input-shape``, ``--burst``, ``--meter``, durations) are parsed in
agent/spec_text.py.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from agent.errors import BadInput
from agent.names import KINDS, METER_KINDS, RUNTIMES, canonical_provider
from agent.schema import is_finite_number
from agent.spec_types import check_types
from agent.spec_types import shown as _shown

SCHEMA = "edgebench.runspec/v1"
_SHA = re.compile(r"^[0-9a-f]{64}$")
# bounds that keep a spec from asking for the absurd (1e300 s of warm-up)
MAX_SECONDS = 7 * 24 * 3600.0
MAX_ITERATIONS = 10**9
MAX_BATCH = 65536
MAX_THREADS = 1024
MAX_DIM = 2**31 - 1  # runtimes index tensors with int32


@dataclass
class MeterSpec:
    kind: str
    port: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class SoakSpec:
    window_s: float = 10.0
    ambient_c: float | None = None
    enclosure: str | None = None
    target_ips: float | None = None
    start_cold: bool = False
    start_cold_max_s: float = 600.0


LOAD_PATTERNS = ("rate", "poisson", "burst")
LATE_POLICIES = ("drop", "queue")
MAX_RATE_HZ = 100_000.0  # beyond this the clock's own reads dominate the interval
MAX_DEADLINE_MS = 3_600_000.0


@dataclass
class LoadSpec:
    """The load pattern (issue 15): arrivals at a fixed rate (a camera), Poisson
    arrivals (a server), idle->burst duty cycles; absent = back to back."""

    rate_hz: float | None = None  # --rate: fixed interval
    poisson_hz: float | None = None  # --rate-poisson: seeded exponential gaps
    seed: int = 0
    burst_on_s: float | None = None  # --burst 2s/8s: a burst lasts this long
    burst_on_n: int | None = None  # --burst 30x/5s: a burst is this many inferences
    burst_off_s: float | None = None  # the idle before each burst
    deadline_ms: float | None = None  # default: the frame interval with --rate
    late: str | None = None  # drop | queue; default drop with --rate, queue otherwise
    max_miss_rate: float | None = None  # soak gate: misses / frames at most this

    @property
    def pattern(self) -> str:
        if self.burst_off_s is not None:
            return "burst"
        return "poisson" if self.poisson_hz is not None else "rate"

    @property
    def interval_ns(self) -> int | None:
        hz = self.rate_hz or self.poisson_hz
        return int(round(1e9 / hz)) if hz else None

    @property
    def deadline_ns(self) -> int | None:
        if self.deadline_ms is not None:
            return int(round(self.deadline_ms * 1e6))
        return int(round(1e9 / self.rate_hz)) if self.rate_hz else None

    @property
    def late_policy(self) -> str:
        return self.late or ("drop" if self.rate_hz else "queue")

    def check(self) -> None:
        for name in ("rate_hz", "poisson_hz"):
            v = getattr(self, name)
            if v is not None and not (is_finite_number(v) and 0 < v <= MAX_RATE_HZ):
                raise BadInput(f"load {name} must be in (0, {MAX_RATE_HZ:.0f}] Hz")
        if self.rate_hz is not None and self.poisson_hz is not None:
            raise BadInput("give either --rate (fixed interval) or --rate-poisson, not both")
        if not 0 <= self.seed < 2**63:
            raise BadInput("load seed must be in [0, 2^63)")
        if (self.burst_on_s is None and self.burst_on_n is None) != (self.burst_off_s is None):
            raise BadInput("a burst needs both its length and its idle time, e.g. --burst 2s/8s")
        if self.burst_on_s is not None and self.burst_on_n is not None:
            raise BadInput("a burst is either a time (2s) or a count (30x), not both")
        if self.burst_on_s is not None:
            _seconds(self.burst_on_s, "burst length", zero_ok=False)
        if self.burst_on_n is not None and not 1 <= self.burst_on_n <= MAX_ITERATIONS:
            raise BadInput(f"burst inference count must be in [1, {MAX_ITERATIONS}]")
        if self.burst_off_s is not None:
            _seconds(self.burst_off_s, "burst idle time", zero_ok=True)
        if self.burst_on_n is not None and self.poisson_hz is not None:
            # a Poisson count burst would end at a random time: give it a length instead
            raise BadInput("--rate-poisson takes a timed burst (e.g. --burst 2s/8s), not a count")
        if self.deadline_ms is not None and not (
            is_finite_number(self.deadline_ms) and 0 < self.deadline_ms <= MAX_DEADLINE_MS
        ):
            raise BadInput(f"deadline must be in (0, {MAX_DEADLINE_MS:.0f}] ms")
        if self.late is not None and self.late not in LATE_POLICIES:
            raise BadInput(f"late policy must be one of {', '.join(LATE_POLICIES)}")
        if self.late is not None and self.rate_hz is None and self.poisson_hz is None:
            raise BadInput("--late needs arrivals to be late for: give --rate or --rate-poisson")
        if self.max_miss_rate is not None and not (
            is_finite_number(self.max_miss_rate) and 0 <= self.max_miss_rate <= 1
        ):
            raise BadInput("max miss rate must be in [0, 1]")
        if self.rate_hz is None and self.poisson_hz is None and self.burst_off_s is None:
            raise BadInput("a load pattern needs --rate, --rate-poisson or --burst")


START_MODES = ("cold", "warm")


@dataclass
class ValiditySpec:
    """What a bench or soak result must meet to be VALID (agent/validity.py,
    MLPerf LoadGen's rules); ``require`` turns INVALID into a failed gate."""

    min_duration_s: float = 10.0
    min_queries: int = 100
    percentile: float = 90.0  # judged by LoadGen's early stopping at this percentile
    require: bool = False

    def check(self) -> None:
        _seconds(self.min_duration_s, "validity min_duration_s", zero_ok=True)
        if not 0 <= self.min_queries <= MAX_ITERATIONS:
            raise BadInput(f"validity min_queries must be in [0, {MAX_ITERATIONS}]")
        if not (is_finite_number(self.percentile) and 50 <= self.percentile < 100):
            raise BadInput("validity percentile must be in [50, 100), e.g. 90 or 99")


# validate gates: the gate's name -> (the metric it reads, True when higher is better)
GATES = {
    "min_cosine": ("cosine", True),
    "max_nmse": ("nmse", False),
    "min_sqnr_db": ("sqnr_db", True),
    "min_top1_agreement": ("top1_agreement", True),
    "min_top5_agreement": ("top5_agreement", True),
    "min_mask_iou": ("mask_iou", True),
    "min_box_recall": ("box_recall", True),
    "min_box_precision": ("box_precision", True),
}


@dataclass
class ValidateSpec:
    # gate -> {output name, or "*" for every output that has the metric: threshold}
    gates: dict[str, dict[str, float]] = field(default_factory=dict)
    mask_threshold: float = 0.5
    # output -> decoder (yolov8, yolov5, picodet) or column layout, e.g. xyxy,score,class
    boxes: dict[str, str] = field(default_factory=dict)
    box_iou: float = 0.5
    box_score: float = 0.25
    nms_iou: float = 0.5  # the decoders' class-wise NMS
    max_det: int = 300  # boxes kept per sample (COCO evaluation's maxDets)
    keep_outputs: bool = False  # outputs.npz in the run directory
    # (scale, zero_point) of integer outputs the agent cannot read from the model
    # (an ONNX QDQ graph output); the controller reads them from the graph
    output_quantization: dict[str, list[float]] = field(default_factory=dict)
    worst: int = 5  # worst samples listed per output and metric
    # the reference made on the board: this float model on the CPU, sample by sample, from the
    # run's inputs (localize's per-tensor runs: intermediate tensors never cross the network)
    float_model_sha256: str | None = None

    def check(self) -> None:
        for gate, per_output in self.gates.items():
            if gate not in GATES:
                expected = ", ".join(GATES)
                raise BadInput(f"unknown validate gate {_shown(repr(gate))}; expected one of {expected}")
            if not isinstance(per_output, dict) or not per_output:
                raise BadInput(f"validate gate {gate}: expected {{OUTPUT or '*': threshold}}")
            for out, v in per_output.items():
                if not isinstance(out, str) or not is_finite_number(v):
                    raise BadInput(f"validate gate {gate}: {_shown(f'{out}={v!r}')} is not a finite number")
        if not is_finite_number(self.mask_threshold) or not 0 < self.mask_threshold < 1:
            raise BadInput("mask threshold must be in (0, 1)")
        if not is_finite_number(self.box_iou) or not 0 < self.box_iou <= 1:
            raise BadInput("box IoU must be in (0, 1]")
        if not is_finite_number(self.box_score):
            raise BadInput("box score threshold must be a number")
        if not is_finite_number(self.nms_iou) or not 0 < self.nms_iou <= 1:
            raise BadInput("NMS IoU must be in (0, 1]")
        if (
            not isinstance(self.max_det, int)
            or isinstance(self.max_det, bool)
            or not 1 <= self.max_det <= 100000
        ):
            raise BadInput("max detections must be an integer in [1, 100000]")
        for name, q in self.output_quantization.items():
            if not isinstance(q, list) or len(q) != 2 or not all(is_finite_number(x) for x in q) or q[0] <= 0:
                raise BadInput(f"output quantization of {_shown(repr(name))} must be [scale > 0, zero_point]")
        if not isinstance(self.worst, int) or not 0 <= self.worst <= 1000:
            raise BadInput("worst must be an integer in [0, 1000]")


@dataclass
class RunSpec:
    kind: str
    model_sha256: str
    model_name: str = "model"
    runtime: str | None = None  # None: from the model's format
    providers: list[str] = field(default_factory=list)
    provider_options: dict[str, dict[str, str]] = field(default_factory=dict)
    delegate: str | None = None
    delegate_options: dict[str, str] = field(default_factory=dict)
    threads: int | None = None
    graph_optimization_level: str = "all"
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    inputs_sha256: str | None = None  # an .npz artifact of input data
    reference_sha256: str | None = None  # an .npz of expected outputs (validate)
    accelerator: str | None = None  # npu|gpu|dsp: the profile supplies provider/delegate
    # set by the agent from the profile's accelerator, never by the controller:
    # the worker exports it before loading the runtime (VX delegate, TIDL read it)
    env: dict[str, str] = field(default_factory=dict)
    warmup_s: float = 1.0
    duration_s: float = 10.0
    min_iterations: int = 100
    placement: bool = True
    fail_on_fallback: bool = False
    strict_placement: bool = False
    max_cpu_ops: int | None = None
    max_partitions: int | None = None
    telemetry: bool = True
    telemetry_rate_hz: float = 10.0
    meter: MeterSpec | None = None
    transient_a: float | None = None
    budget_w: float | None = None  # the supply's power budget; default: the profile's
    soak: SoakSpec | None = None
    validation: ValidateSpec | None = None
    load: LoadSpec | None = None  # None: back to back
    # kind pipeline: stages and streams (agent/pipeline/spec.py); model_sha256 is its first model
    pipeline: dict[str, Any] | None = None
    validity: ValiditySpec | None = None  # None: the defaults
    pin_clocks: bool = False  # governors / jetson_clocks for the run, restored after
    start: str | None = None  # cold | warm: the runtime's cache emptied first, or used
    batch: int | None = None  # --batch N: a dynamic batch run at N; throughput counts samples
    labels: dict[str, str] = field(default_factory=dict)

    def with_accelerator(self, acc: dict[str, Any]) -> RunSpec:
        """This spec with a profile accelerator (``Profile.accelerator(name,
        runtime)``, already the entry for this spec's runtime) applied:
        its runtime, providers or delegate, their options (the user's win) and
        its environment. Naming providers or a delegate as well is ambiguous."""
        name = self.accelerator
        if self.providers or self.delegate:
            what = ", ".join(acc["providers"]) or acc["delegate"] or "its runtime's default"
            raise BadInput(
                f"--accelerator {name} already chooses {what} (profile {acc['profile']}); "
                "give either --accelerator or --provider/--delegate"
            )
        popts = {k: dict(v) for k, v in acc["provider_options"].items()}
        for prov, opts in self.provider_options.items():
            # --provider-opt tensorrt:K=V names the profile's TensorrtExecutionProvider
            prov = canonical_provider(prov, acc["providers"]) or prov
            popts.setdefault(prov, {}).update(opts)
        d = self.to_dict()
        d.update(
            runtime=acc["runtime"],
            providers=list(acc["providers"]),
            provider_options=popts,
            delegate=acc["delegate"],
            delegate_options={**acc["delegate_options"], **self.delegate_options},
            env=dict(acc["env"]),
        )
        return RunSpec.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        if not isinstance(data, dict):
            raise BadInput("run spec must be a JSON object")
        data = dict(data)
        schema = data.pop("schema", SCHEMA)
        if schema != SCHEMA:
            raise BadInput(f"unsupported run spec schema {_shown(repr(schema))}, expected {SCHEMA!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInput(f"unknown run spec field(s): {_shown(', '.join(unknown))}")
        if data.get("meter") is not None:
            data["meter"] = _sub(MeterSpec, data["meter"], "meter")
        if data.get("soak") is not None:
            data["soak"] = _sub(SoakSpec, data["soak"], "soak")
        if data.get("validation") is not None:
            data["validation"] = _sub(ValidateSpec, data["validation"], "validation")
        if data.get("load") is not None:
            data["load"] = _sub(LoadSpec, data["load"], "load")
        if data.get("validity") is not None:
            data["validity"] = _sub(ValiditySpec, data["validity"], "validity")
        try:
            spec = cls(**data)
        except TypeError as exc:
            raise BadInput(f"bad run spec: {exc}") from None
        spec.validate()
        return spec

    def validate(self) -> None:
        check_types(self, "")
        if self.kind not in KINDS:
            raise BadInput(f"unknown run kind {_shown(repr(self.kind))}; expected one of {', '.join(KINDS)}")
        if not isinstance(self.model_sha256, str) or not _SHA.match(self.model_sha256):
            raise BadInput("model_sha256 must be 64 lowercase hex digits")
        for name, val in (("inputs_sha256", self.inputs_sha256), ("reference_sha256", self.reference_sha256)):
            if val is not None and not _SHA.match(val):
                raise BadInput(f"{name} must be 64 lowercase hex digits")
        if self.runtime is not None and self.runtime not in RUNTIMES:
            expected = ", ".join(RUNTIMES)
            raise BadInput(f"unknown runtime {_shown(repr(self.runtime))}; expected one of {expected}")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise BadInput(f"threads must be in [1, {MAX_THREADS}]")
        for name in ("warmup_s", "duration_s"):
            _seconds(getattr(self, name), name, zero_ok=True)
        if not 1 <= self.min_iterations <= MAX_ITERATIONS:
            raise BadInput(f"min_iterations must be in [1, {MAX_ITERATIONS}]")
        for name in ("max_cpu_ops", "max_partitions"):
            if (getattr(self, name) or 0) < 0:
                raise BadInput(f"{name} must not be negative")
        if self.transient_a is not None and not (is_finite_number(self.transient_a) and self.transient_a > 0):
            raise BadInput("transient_a must be a positive number of amperes")
        if self.budget_w is not None and not (is_finite_number(self.budget_w) and self.budget_w > 0):
            raise BadInput("budget_w must be a positive number of watts")
        for iname, dims in self.input_shapes.items():
            if not dims or not all(0 < d <= MAX_DIM for d in dims):
                what = _shown(repr(iname))
                raise BadInput(f"input shape for {what} must be positive integers, e.g. 1x3x224x224")
        if self.meter is not None and self.meter.kind not in METER_KINDS:
            expected = ", ".join(METER_KINDS)
            raise BadInput(f"unknown meter kind {_shown(repr(self.meter.kind))}; expected one of {expected}")
        if self.soak is not None:
            _seconds(self.soak.window_s, "soak window_s", zero_ok=False)
            _seconds(self.soak.start_cold_max_s, "soak start_cold_max_s", zero_ok=True)
            for name in ("ambient_c", "target_ips"):
                v = getattr(self.soak, name)
                if v is not None and not is_finite_number(v):
                    raise BadInput(f"soak {name} must be a finite number")
            if self.soak.target_ips is not None and self.soak.target_ips <= 0:
                raise BadInput("soak target_ips must be positive")
        if self.kind == "soak" and self.soak is None:
            self.soak = SoakSpec()
        if self.kind == "validate":
            on_board = self.validation is not None and self.validation.float_model_sha256
            if self.reference_sha256 is None and not (on_board and self.inputs_sha256):
                raise BadInput("validate needs a reference (.npz of expected outputs)")
            if self.validation is None:
                self.validation = ValidateSpec()
            self.validation.check()
        if self.kind == "pipeline":
            from agent.pipeline.spec import check

            if self.pipeline is None:
                raise BadInput("a pipeline run needs its stages (run spec field pipeline)")
            self.pipeline = check(self.pipeline)
        elif self.pipeline is not None:
            raise BadInput(f"run spec field pipeline belongs to pipeline runs, not to {self.kind}")
        if self.load is not None:
            self.load.check()
            if self.kind in ("placement", "validate"):
                # validate times each sample once, alone; pacing its samples is not built yet
                raise BadInput(f"a load pattern applies to bench and soak runs, not to {self.kind}")
        if self.validity is not None:
            self.validity.check()
        if self.batch is not None and not 1 <= self.batch <= MAX_BATCH:
            raise BadInput(f"batch must be in [1, {MAX_BATCH}]")
        if self.start is not None and self.start not in START_MODES:
            raise BadInput(f"start must be one of {', '.join(START_MODES)}")
        if self.start is not None and self.kind not in ("bench", "soak"):
            raise BadInput(f"a cold or warm start applies to bench and soak runs, not to {self.kind}")
        if not isinstance(self.env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        ):
            raise BadInput("env must map names to strings")
        if not (is_finite_number(self.telemetry_rate_hz) and 0 < self.telemetry_rate_hz <= 1000):
            raise BadInput("telemetry rate must be in (0, 1000] Hz")


def _sub(cls: type, value: Any, name: str) -> Any:
    if not isinstance(value, dict):
        raise BadInput(f"{name} must be an object")
    unknown = sorted(set(value) - {f.name for f in fields(cls)})
    if unknown:
        raise BadInput(f"unknown {name} field(s): {_shown(', '.join(unknown))}")
    try:
        return cls(**value)
    except TypeError as exc:
        raise BadInput(f"bad {name}: {exc}") from None


def _seconds(v: float, name: str, zero_ok: bool) -> None:
    low_ok = v >= 0 if zero_ok else v > 0
    if not (is_finite_number(v) and low_ok and v <= MAX_SECONDS):
        low = "[0" if zero_ok else "(0"
        raise BadInput(f"{name} must be a number of seconds in {low}, {MAX_SECONDS:.0f}] (7 days)")
