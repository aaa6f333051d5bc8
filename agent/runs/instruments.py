"""The instruments around one run: the telemetry sampler and the current
meter's capture, started before the worker and stopped once after it; a
soak's windows enriched with the telemetry and the meter's power over their
span; ``--start-cold``'s wait. ``Execution`` (agent/runs/execution.py) owns one.

The sampler, the capture and the analyses are imported when a run starts,
not with this module: an idle agent carries no numpy.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from agent import messages, rundir
from agent.clock import now_ns
from agent.errors import one_line
from agent.profiles import Profile
from agent.rootfs import RootFS
from agent.runs.journal import Journal
from agent.runs.registry import RunDir, write_error
from agent.spec import MeterSpec, RunSpec

if TYPE_CHECKING:  # the types only: the modules load when a run starts
    from agent.power.capture import Capture
    from agent.telemetry.sampler import Sampler

log = logging.getLogger("edgebench.agent.runs")

SAMPLE_STREAM_PERIOD_NS = 1_000_000_000  # telemetry reaches the journal/stream at 1 Hz


class Run(Protocol):
    """What the instruments read of the run (``execution.ActiveRun``)."""

    rd: RunDir
    spec: RunSpec
    journal: Journal
    cancelled: bool
    t0_ns: int


class Instruments:
    def __init__(
        self,
        run: Run,
        root: RootFS,
        profile: Profile | None,
        meter: MeterSpec | None,
        warnings: list[str],
    ) -> None:
        self.run = run
        self.root = root
        self.profile = profile
        self.meter = meter  # the agent's --meter, unless the spec names one
        self.warnings = warnings  # the run's warnings, shared with its Execution
        self.sampler: Sampler | None = None
        self.capture: Capture | None = None
        self.cold_start: dict | None = None
        self._summaries: tuple[dict | None, dict | None] | None = None

    def samples(self) -> list[dict]:
        return self.sampler.samples() if self.sampler is not None else []

    def start_sampler(self) -> None:
        run = self.run
        if not run.spec.telemetry:
            return
        last = [0]

        def on_sample(sample: dict) -> None:
            t = int(sample.get("t_ns") or now_ns())
            if t - last[0] >= SAMPLE_STREAM_PERIOD_NS and not run.journal.closed:
                last[0] = t
                try:
                    run.journal.append("sample", sample, t_ns=t)
                except RuntimeError:  # journal closed under us at the end of the run
                    pass
                except OSError as exc:  # a full disk: the pump's next append fails the run
                    log.warning("run %s: telemetry not journaled: %s", run.rd.run_id, write_error(exc))

        try:
            from agent.telemetry.sampler import Sampler

            sampler = Sampler(self.root, self.profile, rate_hz=run.spec.telemetry_rate_hz)
            sampler.start(run.rd.path / rundir.TELEMETRY, on_sample)
            self.sampler = sampler
        except Exception as exc:
            self.warnings.append(f"telemetry unavailable: {one_line(exc)}")

    def start_capture(self) -> None:
        """The current meter's capture; BadInput when its port or meter is wrong."""
        meter = self.run.spec.meter or self.meter
        if meter is None:
            return
        from agent.power.capture import Capture

        capture = Capture(meter, self.run.rd.path)
        capture.start()
        self.capture = capture

    def stop(self) -> tuple[dict | None, dict | None]:
        """(telemetry summary, capture summary); the instruments stop once."""
        if self._summaries is None:
            self._summaries = (self._stop(self.sampler), self._stop(self.capture))
        return self._summaries

    def _stop(self, instrument: Sampler | Capture | None) -> dict | None:
        if instrument is None:
            return None
        try:
            return instrument.stop()
        except Exception as exc:
            self.warnings.append(f"{type(instrument).__name__}.stop failed: {one_line(exc)}")
            return None

    def start_cold(self) -> None:
        """soak --start-cold: wait at idle (bounded) until temperatures stop falling."""
        run, soak = self.run, self.run.spec.soak
        if run.spec.kind != "soak" or soak is None or not soak.start_cold or self.sampler is None:
            return
        run.journal.append("log", {"message": f"waiting up to {soak.start_cold_max_s:g} s for a cold start"})
        from agent.soak.coldstart import wait_with_sampler

        res = wait_with_sampler(self.sampler, soak.start_cold_max_s, should_stop=lambda: run.cancelled)
        run.journal.append("log", {"message": "cold start: " + res["reason"], "cold_start": res})
        self.cold_start = res

    def window(self, msg: messages.Window) -> dict:
        """A soak window from the worker, with the telemetry and the meter's power
        over its span; journaled, and kept for the soak analysis."""
        t0 = int(msg.t_start_ns or 0)
        t1 = int(msg.t_end_ns or 0)
        w = {
            "t_s": (t0 - self.run.t0_ns) / 1e9,
            "t_start_ns": t0,
            "t_end_ns": t1,
            "iterations": msg.iterations,
            "throughput_ips": msg.throughput_ips,
            "p50_ms": msg.p50_ms,
            "p99_ms": msg.p99_ms,
        }
        # a load pattern's frames in the window (late, dropped: the soak's misses)
        w.update(msg.frame_counts())
        if self.sampler is not None:
            try:
                w.update(self.sampler.window(t0, t1))
            except Exception as exc:
                log.warning("telemetry window failed: %s", exc)
        # mean power: the current meter when it covers the window, else the board's rails
        meter = self._meter_window(t0, t1)
        if meter is not None:
            w["power_w"] = round(meter["power_w"], 4)
            w["power_source"] = "meter"
        elif w.get("power_w") is not None:
            w["power_source"] = "board"
        self.run.journal.append("window", w, t_ns=t1 or None)
        return w

    def _meter_window(self, t0_ns: int, t1_ns: int) -> dict | None:
        """The meter's mean power over a soak window; None without a meter, a
        voltage (no bus voltage, no profile supply), or most of the window."""
        if self.capture is None or t1_ns <= t0_ns:
            return None
        try:
            supply_v = ((self.profile.budget if self.profile else None) or {}).get("supply_v")
            from agent.power.analysis import window_power

            res = window_power(self.capture.window(t0_ns, t1_ns), t0_ns, t1_ns, supply_v)
        except Exception as exc:  # never lose a window for its power figure
            log.warning("meter window failed: %s", exc)
            return None
        return res if res is not None and res["power_w"] is not None else None
