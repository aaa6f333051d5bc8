"""The result document (``edgebench.result/v1``, DESIGN.md) of one run: built
once, when the run ends, from what the run holds in memory (the worker's
result part, the enriched soak windows, the telemetry samples, the meter's
capture summary), plus the iteration rows and the meter trace the run
directory has. ``partial_result`` builds the same header from the journal
alone, for a run whose agent died (``Registry.recover``) or that never ran.

The analyses (numpy, the power, soak, placement and validate modules) are
imported when a result is assembled, not with this module: the agent process
imports it at start, and an idle agent stays small (bench/bench_agent.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent import rundir
from agent.errors import one_line
from agent.profiles import Profile
from agent.runs.journal import read_events
from agent.spec import RunSpec

if TYPE_CHECKING:
    import numpy as np

    from agent.runs.registry import RunDir

log = logging.getLogger("edgebench.agent.runs")

RESULT_SCHEMA = "edgebench.result/v1"


@dataclass
class Outcome:
    """How one run ended and what it gathered: the inputs of its result."""

    status: str
    error: str | None = None
    code: str | None = None
    part: dict | None = None  # the worker's ``result`` message
    windows: list[dict] = field(default_factory=list)  # soak windows, enriched by the agent
    iterations: int = 0  # the last progress count (a run that never sent its result)
    throughput_ips: float = 0.0
    telemetry: dict | None = None  # the sampler's summary
    samples: list[dict] = field(default_factory=list)  # the sampler's samples, in memory
    capture: dict | None = None  # the meter capture's summary
    cold_start: dict | None = None  # soak --start-cold
    warnings: list[str] = field(default_factory=list)
    environment: dict | None = None  # the board state that skews numbers (agent/environment)
    pinned_clocks: dict | None = None  # --pin-clocks: what was set, whether it went back


def header(run_id: str, spec: dict, state: dict, status: str, error: str | None, code: str | None) -> dict:
    """The keys every result has, complete or partial."""
    return {
        "schema": RESULT_SCHEMA,
        "run_id": run_id,
        "kind": spec.get("kind"),
        "status": status,
        "error": error,
        "error_code": code,
        "created_unix": state.get("created_unix"),
        "started_unix": state.get("started_unix"),
        "ended_unix": state.get("ended_unix") or time.time(),
        "model": {"name": spec.get("model_name"), "sha256": spec.get("model_sha256")},
        "labels": spec.get("labels") or {},
    }


def assemble(
    rd: RunDir,
    spec: RunSpec,
    outcome: Outcome,
    *,
    t0_ns: int,
    agent: dict,
    accelerator: dict | None,
    profile: Profile | None,
) -> dict:
    """The result of a run that started its worker."""
    spec_dict = spec.to_dict()
    doc = header(rd.run_id, spec_dict, rd.state(), outcome.status, outcome.error, outcome.code)
    doc["ended_unix"] = time.time()
    doc.update(t0_ns=t0_ns, spec=spec_dict, agent=agent)
    if accelerator:
        doc["accelerator"] = accelerator
    if outcome.part:
        doc.update(outcome.part)
    elif outcome.iterations:
        doc.update(iterations=outcome.iterations, throughput_ips=outcome.throughput_ips, partial=True)
    if outcome.telemetry is not None:
        doc["telemetry"] = outcome.telemetry
    if doc.get("load"):
        from agent.load.summary import place_bursts

        place_bursts(doc["load"], t0_ns)

    iterations = rundir.load_iterations(rd.path)
    if doc.get("latency_ms") is None:  # the worker never sent its result: latency from what is on disk
        _latency_from_rows(doc, iterations)
    from agent.power.trace import load_trace  # numpy: paid when a run finishes, not by an idle agent

    trace = load_trace(rd.path) if outcome.capture is not None and rundir.has_power(rd.path) else None
    if outcome.capture is not None:
        doc["power"] = _power(spec, outcome, profile, t0_ns, iterations, trace)
        if trace is not None and (doc.get("load") or {}).get("bursts") and "mean_a" in doc["power"]:
            # each burst against the meter: its first-inference spike, transients, energy
            from agent.power.analysis import attribute_bursts

            supply_v = ((profile.budget if profile else None) or {}).get("supply_v")
            frames = rundir.load_arrivals(rd.path)
            doc["power"]["bursts"] = attribute_bursts(
                doc["power"], trace, frames, doc["load"]["bursts"], t0_ns, supply_v
            )
    if spec.kind == "soak":
        doc["soak"] = _soak(spec, outcome, profile, t0_ns)
    soak_windows = (doc.get("soak") or {}).get("windows") or []
    from agent.runs import series

    frames = rundir.load_arrivals(rd.path) if doc.get("load") else None
    # a soak's load panel bins by its window length: "misses per window"
    bin_s = float(spec.soak.window_s) if spec.kind == "soak" and spec.soak else 1.0
    doc["series"] = series.build(
        t0_ns, soak_windows, iterations, outcome.samples, trace, frames, doc.get("load"), bin_s
    )
    if outcome.status == "completed" and spec.kind in ("bench", "soak") and doc.get("latency_ms"):
        from agent.validity import assess

        doc["validity"] = assess(doc, spec)
    if outcome.status == "completed":
        doc["gates"] = _gates(doc, spec)
    if outcome.environment is not None:
        doc["environment"] = outcome.environment
    if outcome.pinned_clocks is not None:
        doc["pinned_clocks"] = outcome.pinned_clocks
    if outcome.warnings:
        doc["warnings"] = outcome.warnings
    return doc


def partial_result(rd: RunDir, status: str, error: str | None, code: str | None = None) -> dict:
    """A result from the journal alone: what a run had reached."""
    spec = rd.spec()
    events = read_events(rd.journal_path)
    windows = [e["payload"] for e in events if e["kind"] == "window"]
    progress = [e["payload"] for e in events if e["kind"] == "progress"]
    phases = [e["payload"].get("phase") for e in events if e["kind"] == "phase"]
    doc = header(rd.run_id, spec, rd.state(), status, error, code)
    doc.update(partial=True, last_phase=phases[-1] if phases else None, journal_events=len(events))
    if progress:
        last = progress[-1]
        doc["iterations"] = last.get("iterations")
        doc["throughput_ips"] = last.get("throughput_ips")
        doc["duration_s"] = last.get("elapsed_s")
    if windows:
        doc["soak"] = _ended_early(_soak_analysis(rd, spec, windows))
    if (rd.path / rundir.ITERATIONS).is_file():  # numpy only for a run that has rows
        _latency_from_rows(doc, rundir.load_iterations(rd.path))
    return doc


def _latency_from_rows(doc: dict, iterations: np.ndarray) -> None:
    """``latency_ms`` of a run cut short (cancelled, crashed worker, killed
    agent) from the measured rows iterations.npy holds, marked as such
    (``latency_from``); nothing without measured rows."""
    from agent.stats import latency_summary_ms

    m = iterations[iterations[:, 2] == rundir.MEASURED] if iterations.shape[0] else iterations
    if not m.shape[0]:
        return
    doc["latency_ms"] = latency_summary_ms(m[:, 1] - m[:, 0])
    doc["latency_from"] = "iterations.npy (partial run)"
    doc["measured_rows"] = int(m.shape[0])


def _power(
    spec: RunSpec,
    outcome: Outcome,
    profile: Profile | None,
    t0_ns: int,
    iterations: np.ndarray,
    trace: Any,
) -> dict:
    capture = dict(outcome.capture or {})
    if trace is None:
        return capture
    from agent.power.analysis import analyze as analyze_power
    from agent.power.analysis import cross_check

    try:
        budget = (profile.budget if profile else None) or {}
        power = analyze_power(
            trace,
            iterations,
            spec.budget_w if spec.budget_w is not None else budget.get("budget_w"),  # --budget-w wins
            budget.get("supply_v"),
            spec.transient_a,
            run_start_ns=t0_ns,  # transients' t_s from run start
        )
        # the board's own input rail(s) (Jetson INA3221) against the meter, over the measured phase
        cc = cross_check(
            power,
            [s for s in outcome.samples if s.get("rails")],
            window_ns=rundir.measured_span_ns(iterations),
            input_rails=profile.input_rails if profile else None,
        )
        if cc is not None:
            power["cross_check"] = cc
        return {**capture, **power}
    except Exception as exc:  # a broken capture costs the power figures, not the run
        log.exception("power analysis failed")
        capture["error"] = f"power analysis failed: {one_line(exc)}"
        return capture


def _soak(spec: RunSpec, outcome: Outcome, profile: Profile | None, t0_ns: int) -> dict:
    windows = outcome.windows
    sources = {w.get("power_source") for w in windows} - {None}
    base: dict[str, Any] = {
        "window_s": spec.soak.window_s if spec.soak else None,
        "windows": windows,
        # where the windows' power_w came from: meter, board, or mixed (a meter lost mid-soak)
        "power_source": sources.pop() if len(sources) == 1 else ("mixed" if sources else None),
    }
    try:
        from agent.soak.analysis import analyze_soak

        soak = {**base, **analyze_soak(windows, outcome.samples, spec, profile, t0_ns=t0_ns)}
    except Exception as exc:
        log.exception("soak analysis failed")
        soak = {**base, "error": f"soak analysis failed: {one_line(exc)}"}
    if outcome.cold_start is not None:
        soak["cold_start"] = outcome.cold_start
    return soak if outcome.status == "completed" else _ended_early(soak)


def _soak_analysis(rd: RunDir, spec: dict, windows: list[dict]) -> dict:
    """soak{} from the journal's windows and the telemetry on disk (a run
    whose agent died: nothing is left in memory)."""
    base = {"window_s": (spec.get("soak") or {}).get("window_s"), "windows": windows}
    try:
        from agent.soak.analysis import analyze_soak

        return {**base, **analyze_soak(windows, rundir.load_telemetry(rd.path), spec)}
    except Exception as exc:
        log.exception("soak analysis failed")
        return {**base, "error": f"soak analysis failed: {one_line(exc)}"}


def _ended_early(soak: dict) -> dict:
    """A soak that did not run its course (cancelled, failed, agent stopped or
    killed): its figures are over the windows it has (``partial``), its
    verdict says it ended early, and ``verdict_so_far`` what those windows show."""
    soak["verdict_so_far"] = soak.get("verdict")
    soak["verdict"] = "interrupted"
    soak["partial"] = True
    return soak


def _gates(doc: dict, spec: RunSpec) -> list[dict]:
    from agent.load.summary import miss_rate_gate
    from agent.placement.gates import evaluate as placement_gates
    from agent.soak.analysis import soak_gate
    from agent.validate.gates import evaluate as validation_gates

    try:
        gates = list(placement_gates(doc, spec))
        validation = doc.get("validation")
        if validation is not None and spec.validation is not None:
            checks = validation_gates(validation, spec.validation)
            validation["gates"] = checks
            validation["passed"] = all(g["passed"] for g in checks)
            gates += checks
    except Exception as exc:
        log.exception("gate evaluation failed")
        gates = [{"name": "gates", "passed": False, "message": f"gate evaluation failed: {one_line(exc)}"}]
    target = soak_gate(doc["soak"]) if doc.get("soak") else None
    if target is not None:
        gates.append(target)
    if doc.get("validity") and spec.validity is not None and spec.validity.require:
        v = doc["validity"]
        why = "; ".join(v["reasons"])
        gates.append({"name": "validity", "passed": v["valid"], "message": "VALID" if v["valid"] else why})
    misses = miss_rate_gate(doc["load"], spec.load.max_miss_rate) if doc.get("load") and spec.load else None
    if misses is not None:
        gates.append(misses)
    return gates
