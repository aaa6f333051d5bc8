"""The run options every run command shares (DESIGN.md "Run options"), and the
one place that turns them into an agent.spec.RunSpec.

Parsing errors become argparse errors (exit 2, one line); semantic checks are
RunSpec.validate()'s, raised as BadInput.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from agent.errors import BadInput
from agent.names import METER_KINDS
from agent.spec import LATE_POLICIES, LoadSpec, RunSpec, SoakSpec
from agent.spec_text import parse_burst, parse_duration, parse_meter, parse_shape


def seconds(text: str) -> float:
    """argparse type: a duration (``10``, ``90s``, ``30m``, ``1h``) in seconds."""
    try:
        v = parse_duration(text)
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: must not be negative")
    return v


def gate_value(text: str) -> tuple[str, float]:
    """A validate gate's value (``--min-cosine`` and the like): ``X`` (every
    output) or ``OUTPUT=X``; output names may hold '=' themselves."""
    out, sep, val = text.rpartition("=")
    try:
        return (out if sep else "*"), float(val)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or OUTPUT=NUMBER, got {text!r}") from None


def _int_at_least(lo: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = lo - 1
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return v

    return parse


def _rate_hz(text: str) -> float:
    """argparse type: a telemetry rate in (0, 1000] Hz."""
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v <= 1000:  # also refuses nan
        raise argparse.ArgumentTypeError(f"bad rate {text!r}: expected Hz in (0, 1000]")
    return v


def _positive_float(what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = -1.0
        if not 0 < v < float("inf"):  # also refuses nan
            raise argparse.ArgumentTypeError(f"bad {what} {text!r}: expected a positive number")
        return v

    return parse


def _burst(text: str) -> tuple[float | None, int | None, float]:
    try:
        return parse_burst(text)
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_positive_int = _int_at_least(1, "positive")
_nonneg_int = _int_at_least(0, "non-negative")


def add_run_options(
    parser: argparse.ArgumentParser,
    *,
    duration_s: float = 10.0,
    duration_metavar: str = "SECONDS",
    duration_help: str = "measured run length (default 10 s)",
    timed: bool = True,
) -> None:
    """Add every run option of DESIGN.md to a run command's parser. A command
    whose --duration means something else (soak: the whole soak, 30m) says so
    through the ``duration_*`` parameters; one that runs no timed phase
    (placement: one pass; validate: each sample once) has ``timed=False`` and
    no --warmup/--duration/--min-iterations to mislead."""
    g = parser.add_argument_group("run options")
    g.add_argument(
        "--runtime",
        choices=("onnxruntime", "litert"),
        default=None,
        help="runtime (default: from the model format)",
    )
    g.add_argument(
        "--provider",
        action="append",
        default=[],
        metavar="NAME",
        help="execution provider, repeatable, in order",
    )
    g.add_argument(
        "--provider-opt", action="append", default=[], metavar="NAME:K=V", help="an execution-provider option"
    )
    g.add_argument("--delegate", default=None, metavar="PATH", help="an external LiteRT delegate library")
    g.add_argument("--delegate-opt", action="append", default=[], metavar="K=V", help="a delegate option")
    g.add_argument(
        "--accelerator",
        default=None,
        metavar="NAME",
        help="npu, gpu, dsp, dla...: the board profile supplies runtime, provider/delegate, options, env",
    )
    g.add_argument("--threads", type=_positive_int, default=None, metavar="N")
    g.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224")
    g.add_argument("--inputs", default=None, metavar="FILE.npz", help="input data")
    if timed:
        g.add_argument(
            "--warmup", type=seconds, default=1.0, metavar="SECONDS", help="warm-up time (default 1 s)"
        )
        g.add_argument(
            "--duration", type=seconds, default=duration_s, metavar=duration_metavar, help=duration_help
        )
        g.add_argument("--min-iterations", type=_positive_int, default=100, metavar="N")
    else:
        parser.set_defaults(duration=0.0, warmup=0.0, min_iterations=1)
    g.add_argument(
        "--fail-on-fallback", action="store_true", help="a CPU fallback fails the placement gate (exit 3)"
    )
    g.add_argument(
        "--strict-placement",
        action="store_true",
        help="ONNX Runtime: refuse to load a graph it cannot place without CPU fallback (run fails, exit 1)",
    )
    g.add_argument(
        "--max-cpu-ops", type=_nonneg_int, default=None, metavar="N", help="gate: at most N ops on CPU"
    )
    g.add_argument(
        "--max-partitions",
        type=_positive_int,
        default=None,
        metavar="N",
        help="gate: at most N accelerator partitions",
    )
    g.add_argument(
        "--meter", default=None, metavar="KIND:PORT", help=f"current meter ({', '.join(METER_KINDS)})"
    )
    g.add_argument("--meter-opt", action="append", default=[], metavar="K=V", help="a meter option")
    g.add_argument(
        "--transient-a", type=float, default=None, metavar="A", help="current above which a transient counts"
    )
    g.add_argument(
        "--budget-w", type=_positive_float("budget"), default=None, metavar="W",
        help="the supply's power budget the meter's peaks are checked against (default: the board profile's)",
    )  # fmt: skip
    g.add_argument(
        "--ambient-c", type=float, default=None, metavar="C", help="ambient temperature (metadata)"
    )
    g.add_argument("--enclosure", default=None, metavar="LABEL", help="enclosure label (metadata)")
    g.add_argument(
        "--target-ips",
        type=float,
        default=None,
        metavar="IPS",
        help="sustained throughput target (soak gate)",
    )
    lg = parser.add_argument_group("load pattern (default: back to back)")
    lg.add_argument(
        "--rate", type=_positive_float("rate"), default=None, metavar="FPS",
        help="frames arrive at a fixed rate on the monotonic clock (a camera)",
    )  # fmt: skip
    lg.add_argument(
        "--rate-poisson", type=_positive_float("rate"), default=None, metavar="QPS",
        help="Poisson arrivals at this mean rate, seeded (a server)",
    )  # fmt: skip
    lg.add_argument(
        "--load-seed", type=_nonneg_int, default=0, metavar="N", help="seed of --rate-poisson (default 0)"
    )
    lg.add_argument(
        "--burst", type=_burst, default=None, metavar="ON/OFF",
        help="idle->burst duty cycle: 2s/8s, or 30x/5s (30 inferences, then 5 s idle); with --rate inside",
    )  # fmt: skip
    lg.add_argument(
        "--deadline", type=_positive_float("deadline"), default=None, metavar="MS",
        help="per-frame deadline from arrival (default: the frame interval with --rate)",
    )  # fmt: skip
    lg.add_argument(
        "--late", choices=LATE_POLICIES, default=None,
        help="a frame that arrives while the last runs: drop (camera; default with --rate) or queue",
    )  # fmt: skip
    lg.add_argument(
        "--max-miss-rate", type=float, default=None, metavar="X",
        help="gate: late + dropped frames at most this share, e.g. 0.01 (exit 3)",
    )  # fmt: skip
    g.add_argument("--no-telemetry", action="store_true", help="do not sample thermals/clocks/rails")
    g.add_argument(
        "--telemetry-rate",
        type=_rate_hz,
        default=10.0,
        metavar="HZ",
        help="telemetry sample rate, (0, 1000] (default 10)",
    )
    g.add_argument(
        "--label", action="append", default=[], metavar="K=V", help="a free-form label stored with the result"
    )


def _kv(text: str, flag: str) -> tuple[str, str]:
    k, sep, v = text.partition("=")
    if not sep or not k:
        raise BadInput(f"bad {flag} {text!r}: expected K=V")
    return k, v


def spec_from_args(
    args: argparse.Namespace,
    kind: str,
    model_sha: str,
    model_name: str,
    inputs_sha: str | None = None,
    reference_sha: str | None = None,
) -> RunSpec:
    """Build and validate the RunSpec for a parsed run command; the caller pushes
    --inputs / --reference first and passes their sha256."""
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
    )
    spec.validate()
    return spec


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
