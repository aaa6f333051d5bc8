"""The run options every run command shares (DESIGN.md "Run options"), the
options of each run kind (validate's gates, soak's windows), and the parser of
a kind that both the commands and fleet plans use: one definition of each.
controller/specs.py turns the parsed options into an agent.spec.RunSpec.

Parsing errors become argparse errors (exit 2, one line); semantic checks are
RunSpec.validate()'s, raised as BadInput.

Over 400 lines because it is the one place every option is defined (run
options, validity, --start, sweeps, each kind's own): splitting it would
give the commands and fleet plans two places to drift apart.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from agent.errors import BadInput
from agent.names import METER_KINDS
from agent.spec import GATES, LATE_POLICIES
from agent.spec_text import parse_burst, parse_duration
from controller.accuracy.gates import ACCURACY_GATES
from controller.accuracy.gates import HELP as ACCURACY_HELP


def seconds(text: str) -> float:
    """argparse type: a duration (``10``, ``90s``, ``30m``, ``1h``) in seconds."""
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: must not be negative")
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


positive_int = _int_at_least(1, "positive")
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
    g.add_argument("--threads", type=positive_int, default=None, metavar="N")
    g.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224")
    g.add_argument("--inputs", default=None, metavar="FILE.npz", help="input data")
    if timed:
        g.add_argument(
            "--warmup", type=seconds, default=1.0, metavar="SECONDS", help="warm-up time (default 1 s)"
        )
        g.add_argument(
            "--duration", type=seconds, default=duration_s, metavar=duration_metavar, help=duration_help
        )
        g.add_argument("--min-iterations", type=positive_int, default=100, metavar="N")
        g.add_argument(
            "--batch",
            type=positive_int,
            default=None,
            metavar="N",
            help="a dynamic batch run at N: samples stacked from --inputs or generated;"
            " throughput counts samples",
        )
        add_validity_options(parser)
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
        type=positive_int,
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
        "--budget-w",
        type=_positive_float("budget"),
        default=None,
        metavar="W",
        help="the supply's power budget the meter's peaks are checked against (default: the board profile's)",
    )
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
        "--rate",
        type=_positive_float("rate"),
        default=None,
        metavar="FPS",
        help="frames arrive at a fixed rate on the monotonic clock (a camera)",
    )
    lg.add_argument(
        "--rate-poisson",
        type=_positive_float("rate"),
        default=None,
        metavar="QPS",
        help="Poisson arrivals at this mean rate, seeded (a server)",
    )
    lg.add_argument(
        "--load-seed", type=_nonneg_int, default=0, metavar="N", help="seed of --rate-poisson (default 0)"
    )
    lg.add_argument(
        "--burst",
        type=_burst,
        default=None,
        metavar="ON/OFF",
        help="idle->burst duty cycle: 2s/8s, or 30x/5s (30 inferences, then 5 s idle); with --rate inside",
    )
    lg.add_argument(
        "--deadline",
        type=_positive_float("deadline"),
        default=None,
        metavar="MS",
        help="per-frame deadline from arrival (default: the frame interval with --rate)",
    )
    lg.add_argument(
        "--late",
        choices=LATE_POLICIES,
        default=None,
        help="a frame that arrives while the last runs: drop (camera; default with --rate) or queue",
    )
    lg.add_argument(
        "--max-miss-rate",
        type=float,
        default=None,
        metavar="X",
        help="gate: late + dropped frames at most this share, e.g. 0.01 (exit 3)",
    )
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


def _add_gate(g: Any, gate: str, help_text: str | None) -> None:
    """One gate option: ``--GATE [OUTPUT=]X``, repeatable, global or per output."""
    g.add_argument(
        "--" + gate.replace("_", "-"),
        dest=gate,
        action="append",
        type=gate_value,
        default=[],
        metavar="[OUTPUT=]X",
        help=help_text,
    )


def add_gate_options(g: Any, helps: bool = True) -> None:
    """validate's tensor and task gates, global or per output (exit 3)."""
    for gate, (metric, higher) in GATES.items():
        said = f"exit 3 when {metric} is {'below' if higher else 'above'} X, for every output or one"
        _add_gate(g, gate, said if helps else None)
    g.add_argument(
        "--mask-threshold", type=float, default=0.5, metavar="T", help="for mask IoU (default 0.5)"
    )


def add_validation_options(p: argparse.ArgumentParser, reference: bool = True) -> None:
    """What `edgebench validate` takes beyond the run options; ``reference=False``
    for a command that makes its own (localize: from --float)."""
    if reference:
        p.add_argument("--reference", required=True, metavar="REF.npz", help="from `edgebench reference`")
    add_run_options(p, timed=False)  # every sample runs once: no warm-up or duration
    g = p.add_argument_group("validation")
    add_gate_options(g)
    add_task_options(g)
    g.add_argument("--keep-outputs", action="store_true", help="store the device's outputs (outputs.npz)")
    g.add_argument(
        "--metric-plugin",
        default=None,
        metavar="MODULE:FUNCTION",
        help="your metric, run here: FUNCTION(outputs, reference, inputs) -> {name: number}",
    )
    g.add_argument(
        "--plugin-gate", action="append", default=[], metavar="NAME>=X", help="a gate on a plugin metric"
    )


SOAK_DURATION_S = 30 * 60.0
SOAK_WINDOW_S = 10.0


def add_soak_options(p: argparse.ArgumentParser) -> None:
    """What `edgebench soak` takes: --duration is the whole soak here (bench's
    means seconds of measurement); --ambient-c, --enclosure and --target-ips
    are among the run options."""
    add_run_options(
        p,
        duration_s=SOAK_DURATION_S,
        duration_metavar="DURATION",
        duration_help="soak length, e.g. 30m, 90s, 1h (default 30m)",
    )
    g = p.add_argument_group("soak")
    g.add_argument(
        "--window",
        type=seconds,
        default=SOAK_WINDOW_S,
        metavar="DURATION",
        help="window length (default 10s)",
    )
    g.add_argument(
        "--start-cold", action="store_true", help="wait at idle until temperatures stop falling first"
    )
    g.add_argument(
        "--start-cold-max",
        type=seconds,
        default=600.0,
        metavar="DURATION",
        help="bound on the --start-cold wait (10m)",
    )


def _percentile(text: str) -> float:
    try:
        v = float(text.lstrip("pP"))
    except ValueError:
        v = -1.0
    if not 50 <= v < 100:
        raise argparse.ArgumentTypeError(f"bad percentile {text!r}: expected 50..99.99, e.g. 90 or 99")
    return v


def add_validity_options(parser: argparse.ArgumentParser) -> None:
    """VALID/INVALID (MLPerf LoadGen's rules, agent/validity.py) and the clocks
    the run is measured at: every timed run (bench, soak)."""
    v = parser.add_argument_group("validity and environment")
    v.add_argument(
        "--require-valid", action="store_true", help="an INVALID result fails the validity gate (exit 3)"
    )
    v.add_argument(
        "--valid-min-duration",
        type=seconds,
        default=None,
        metavar="SECONDS",
        help="minimum measured duration of a VALID result (default 10 s)",
    )
    v.add_argument(
        "--valid-min-queries",
        type=_nonneg_int,
        default=None,
        metavar="N",
        help="minimum measured queries of a VALID result (default 100)",
    )
    v.add_argument(
        "--valid-percentile",
        type=_percentile,
        default=None,
        metavar="P",
        help="the percentile LoadGen's early stopping must support (default 90)",
    )
    v.add_argument(
        "--pin-clocks",
        action="store_true",
        help="set CPU/GPU governors to performance (Jetson: clocks locked) for the run, restored after",
    )


START_MODES = ("cold", "warm", "both")


def add_start_option(p: argparse.ArgumentParser) -> None:
    """bench --start: by the runtime cache's state (agent/runtimes/cache.py, controller/starts.py)."""
    p.add_argument(
        "--start",
        choices=START_MODES,
        default=None,
        help="cold: the runtime's cache (TensorRT engines, VX graphs, ORT's optimized model) emptied first;"
        " warm: used; both: one run of each, compared",
    )


def add_sweep_options(p: argparse.ArgumentParser) -> None:
    """bench --sweep: one run per point of the axes' cartesian product (controller/sweep/)."""
    g = p.add_argument_group("sweep")
    g.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="AXIS=V1,V2",
        help="threads, batch, accelerator, input_shape (NAME:1x3x320x320), provider (NAME or A+B)",
    )
    g.add_argument(
        "--objective",
        choices=("throughput", "p99"),
        default="throughput",
        help="the best point: most samples/s (under --p99-max), or lowest p99",
    )
    g.add_argument("--p99-max", type=_positive_float("p99 bound"), default=None, metavar="MS")
    g.add_argument("--md", default=None, metavar="FILE", help="the sweep table as Markdown")
    g.add_argument("--html", default=None, metavar="FILE", help="the sweep table and plot as HTML")
    g.add_argument("--plot", default=None, metavar="FILE.png", help="throughput against p99, Pareto front")


def add_kind_options(p: argparse.ArgumentParser, kind: str) -> None:
    """Every option of a run of ``kind`` (the command adds agent, DB and output
    options of its own)."""
    if kind == "bench":
        add_run_options(p)
        add_start_option(p)
        add_sweep_options(p)
    elif kind == "placement":
        add_run_options(p, timed=False)  # one pass for placement, not a timed run
    elif kind == "validate":
        add_validation_options(p)
    elif kind == "soak":
        add_soak_options(p)
    elif kind == "pipeline":
        add_pipeline_options(p)
    else:
        raise ValueError(f"no options for run kind {kind!r}")


def add_pipeline_options(p: argparse.ArgumentParser) -> None:
    """What `edgebench pipeline` (and a fleet plan's pipeline job) takes beyond the run options."""
    add_run_options(p)
    # a camera has no minimum query count: --duration and --rate decide the frames
    p.set_defaults(min_iterations=1)
    p.add_argument(
        "--window", type=seconds, default=None, help="soak window (a run of 5 min or more is a soak)"
    )
    p.add_argument(
        "--keep-outputs",
        type=int,
        default=16,
        metavar="N",
        help="frames whose final outputs the result keeps",
    )
    p.add_argument(
        "--no-placement", action="store_true", help="skip the models' placement pass after the run"
    )


def add_task_options(g: Any) -> None:
    """validate's task options (optimize and localize take them too): decoders,
    ground truth, accuracy gates read on the controller after the run."""
    for gate in ACCURACY_GATES:
        _add_gate(g, gate, ACCURACY_HELP[gate])
    g.add_argument(
        "--boxes",
        action="append",
        default=[],
        metavar="OUTPUT=DECODER",
        help="a detector output decoded on the agent: yolov8, yolov5, picodet, or box rows "
        "such as dets=xyxy,score,class; recall/precision at --box-iou and mAP",
    )
    g.add_argument("--box-iou", type=float, default=0.5, metavar="IOU", help="box matching IoU")
    g.add_argument(
        "--box-score", type=float, default=0.25, metavar="S", help="boxes scoring less are ignored"
    )
    g.add_argument("--nms-iou", type=float, default=0.5, metavar="IOU", help="decoders' class-wise NMS")
    g.add_argument("--max-det", type=int, default=300, metavar="N", help="boxes kept per sample")
    g.add_argument(
        "--labels",
        default=None,
        metavar="GT.json",
        help="ground truth: COCO detection JSON (image k = sample k, model-input pixels) "
        "or a JSON list of class ids (one per sample)",
    )


def kind_parser(kind: str, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> Any:
    """A parser of ``MODEL <options of kind>``: what a fleet plan's ``options:``
    go through, the same definitions the command uses."""
    p = parser_class(prog=f"edgebench {kind}")
    p.add_argument("model")
    add_kind_options(p, kind)
    return p
