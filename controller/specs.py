"""The one builder of run specs: parsed run options (controller/runopts.py)
-> a validated agent.spec.RunSpec, one entry per run kind in ``BUILDERS``.

Commands, fleet plans, the demo and optimize all build their specs here; a new
run kind is one builder entry (and its options in runopts), never a copy of
the run path (controller/session.py runs the spec)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from agent.spec import START_MODES, LoadSpec, RunSpec, SoakSpec, ValiditySpec
from agent.spec_text import parse_meter, parse_shape


def _kv(text: str, flag: str) -> tuple[str, str]:
    k, sep, v = text.partition("=")
    if not sep or not k:
        raise BadInput(f"bad {flag} {text!r}: expected K=V")
    return k, v


def from_options(
    args: argparse.Namespace,
    kind: str,
    model_sha: str,
    model_name: str,
    inputs_sha: str | None = None,
    reference_sha: str | None = None,
    validate: bool = True,
) -> RunSpec:
    """The RunSpec of the shared run options of a parsed command, validated
    (unless ``validate`` is False: ``build`` validates once its kind's part is
    in); the caller pushes --inputs / --reference first and passes their sha256."""
    g: Any = lambda name, default=None: getattr(args, name, default)  # noqa: E731 - commands may lack some options
    provider_options: dict[str, dict[str, str]] = {}
    for text in g("provider_opt", []) or []:
        name, sep, kv = text.partition(":")
        if not sep or not name:
            raise BadInput(f"bad --provider-opt {text!r}: expected NAME:K=V")
        k, v = _kv(kv, "--provider-opt")
        provider_options.setdefault(name, {})[k] = v
    input_shapes = dict(parse_shape(s) for s in g("input_shape", []) or [])
    meter = None
    if g("meter"):
        meter = parse_meter(args.meter, g("meter_opt", []))
    elif g("meter_opt"):
        raise BadInput("--meter-opt needs --meter KIND:PORT")
    soak = None
    if g("target_ips") is not None and kind != "soak":
        raise BadInput("--target-ips is the sustained-throughput target of a soak; use edgebench soak")
    if kind == "soak" or any(g(n) is not None for n in ("ambient_c", "enclosure")):
        soak = SoakSpec(ambient_c=g("ambient_c"), enclosure=g("enclosure"), target_ips=g("target_ips"))
    spec = RunSpec(
        kind=kind,
        load=load_from_args(args),
        model_sha256=model_sha,
        model_name=model_name,
        runtime=g("runtime"),
        providers=list(g("provider", []) or []),
        provider_options=provider_options,
        delegate=g("delegate"),
        delegate_options=dict(_kv(t, "--delegate-opt") for t in g("delegate_opt", []) or []),
        threads=g("threads"),
        input_shapes=input_shapes,
        accelerator=g("accelerator"),
        warmup_s=float(g("warmup", 1.0) if g("warmup") is not None else 1.0),
        duration_s=float(g("duration", 10.0) if g("duration") is not None else 10.0),
        min_iterations=int(g("min_iterations", 100) or 100),
        fail_on_fallback=bool(g("fail_on_fallback", False)),
        strict_placement=bool(g("strict_placement", False)),
        max_cpu_ops=g("max_cpu_ops"),
        max_partitions=g("max_partitions"),
        telemetry=not g("no_telemetry", False),
        # 0 is refused, never read as "the default": it would sample at 10 Hz unasked
        telemetry_rate_hz=float(10.0 if g("telemetry_rate") is None else g("telemetry_rate")),
        meter=meter,
        transient_a=g("transient_a"),
        budget_w=g("budget_w"),
        soak=soak,
        inputs_sha256=inputs_sha,
        reference_sha256=reference_sha,
        labels=dict(_kv(t, "--label") for t in g("label", []) or []),
        validity=validity_from_args(args),
        pin_clocks=bool(g("pin_clocks", False)),
        batch=g("batch"),
        start=g("start") if g("start") in START_MODES else None,  # "both" is two runs: controller/starts.py
    )
    if validate:
        _validate_for_the_user(spec)
    return spec


# a spec field -> the option that sets it: the user typed the option, not the field
_FLAGS = {
    "duration_s": "--duration",
    "warmup_s": "--warmup",
    "min_iterations": "--min-iterations",
    "telemetry_rate_hz": "--telemetry-rate",
    "transient_a": "--transient-a",
    "budget_w": "--budget-w",
    "window_s": "--window",
    "start_cold_max_s": "--start-cold-max",
    "target_ips": "--target-ips",
    "max_cpu_ops": "--max-cpu-ops",
    "max_partitions": "--max-partitions",
    "input_shapes": "--input-shape",
    "batch": "--batch",
    "threads": "--threads",
}
_FIELD = re.compile(r"\b(?:soak\.)?(" + "|".join(_FLAGS) + r")\b")


def _validate_for_the_user(spec: RunSpec) -> None:
    """spec.validate(), its message naming the options, not the spec's fields."""
    try:
        spec.validate()
    except BadInput as exc:
        raise BadInput(_FIELD.sub(lambda m: _FLAGS[m.group(1)], str(exc))) from None


def validity_from_args(args: argparse.Namespace) -> ValiditySpec | None:
    """--require-valid / --valid-* -> a ValiditySpec (None: all defaults)."""
    g: Any = lambda name: getattr(args, name, None)  # noqa: E731
    names = ("valid_min_duration", "valid_min_queries", "valid_percentile")
    if not g("require_valid") and all(g(n) is None for n in names):
        return None
    d = ValiditySpec()
    given = lambda name, default: default if g(name) is None else g(name)  # noqa: E731
    return ValiditySpec(
        min_duration_s=float(given("valid_min_duration", d.min_duration_s)),
        min_queries=int(given("valid_min_queries", d.min_queries)),
        percentile=float(given("valid_percentile", d.percentile)),
        require=bool(g("require_valid")),
    )


def load_from_args(args: argparse.Namespace) -> LoadSpec | None:
    """--rate/--rate-poisson/--burst/--deadline/--late/--max-miss-rate -> a
    LoadSpec (None: back to back); RunSpec.validate() checks the combination."""
    g: Any = lambda name: getattr(args, name, None)  # noqa: E731
    on_s = on_n = off_s = None
    if g("burst") is not None:
        on_s, on_n, off_s = g("burst")
    named = [g(n) is not None for n in ("rate", "rate_poisson", "burst", "deadline", "late", "max_miss_rate")]
    if not any(named):
        return None
    if not any(named[:3]):
        raise BadInput(
            "--deadline, --late and --max-miss-rate need a load pattern: --rate, --rate-poisson or --burst"
        )
    return LoadSpec(
        rate_hz=g("rate"),
        poisson_hz=g("rate_poisson"),
        seed=int(g("load_seed") or 0),
        burst_on_s=on_s,
        burst_on_n=on_n,
        burst_off_s=off_s,
        deadline_ms=g("deadline"),
        late=g("late"),
        max_miss_rate=g("max_miss_rate"),
    )


def _soak(spec: RunSpec, args: argparse.Namespace) -> None:
    assert spec.soak is not None  # from_options gives every soak its SoakSpec
    spec.soak.window_s = float(args.window)
    spec.soak.start_cold = bool(args.start_cold)
    spec.soak.start_cold_max_s = float(args.start_cold_max)


def _validate(spec: RunSpec, args: argparse.Namespace) -> None:
    from controller.validation import validation_spec

    spec.validation = validation_spec(args, Path(args.model))


def _plain(spec: RunSpec, args: argparse.Namespace) -> None:
    return None


PIPELINE_SOAK_FROM_S = (
    300.0  # a pipeline this long is a soak of the application: windows, throttle attribution
)


def _pipeline(spec: RunSpec, args: argparse.Namespace) -> None:
    """The stages (``args.pipeline_wire``, with the pushed files' sha256, from
    controller/pipeline/run.prepare), the soak window of a long run, the
    placement pass."""
    spec.pipeline = args.pipeline_wire
    spec.placement = not getattr(args, "no_placement", False)
    window = getattr(args, "window", None)
    if window is not None or spec.duration_s >= PIPELINE_SOAK_FROM_S:
        soak = spec.soak or SoakSpec()
        soak.window_s = float(window or soak.window_s)
        spec.soak = soak


# kind -> what that kind adds to the shared options' spec
BUILDERS: dict[str, Callable[[RunSpec, argparse.Namespace], None]] = {
    "bench": _plain,
    "placement": _plain,
    "soak": _soak,
    "validate": _validate,
    "pipeline": _pipeline,
}


def build(
    kind: str,
    args: argparse.Namespace,
    model_sha: str,
    model_name: str,
    inputs_sha: str | None = None,
    reference_sha: str | None = None,
) -> RunSpec:
    """The validated RunSpec of ``kind`` for parsed options (runopts.kind_parser
    or the command's own parser, which adds the same options)."""
    extend = BUILDERS.get(kind)
    if extend is None:
        raise BadInput(f"unknown run kind {kind!r}; known: {', '.join(BUILDERS)}")
    spec = from_options(args, kind, model_sha, model_name, inputs_sha, reference_sha, validate=False)
    extend(spec, args)
    _validate_for_the_user(spec)
    return spec
