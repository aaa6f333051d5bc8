"""The one sampler: a thread in the agent's main process that reads every
telemetry source at a fixed rate (default 10 Hz), stamps each sample with
time.monotonic_ns() (the clock the worker stamps inferences with), appends it
to ``telemetry.jsonl`` and keeps running summaries.

Sources, merged in this order (later ones fill in what earlier ones lack):
- sysfs (always): zones, clocks, GPU load, INA3221 rails
- jtop, on a Jetson when its service answers (rails, engines, nvpmodel)
- tegrastats, on a Jetson when sysfs has no readable rails and jtop is absent
- psutil: CPU utilisation, memory in use, the agent's RSS

jtop and tegrastats read the live board, so they are only tried when the
root is ``/`` (never over a fixture tree).
"""

from __future__ import annotations

import collections
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from agent.clock import now_ns
from agent.profiles import Profile
from agent.rootfs import RootFS
from agent.telemetry.sysfs import SysfsReader

log = logging.getLogger("edgebench.telemetry")

# Soak windows are computed as the run goes, so the full-rate ring only needs
# to reach back a while; summaries are running totals and see every sample.
# Older samples are thinned into a bounded history (1 Hz, halved again each
# time it fills) so samples() still spans a whole soak at bounded memory.
RING_SECONDS = 600.0
HISTORY_MAX = 7200
FLUSH_EVERY_S = 1.0


class _Stat:
    __slots__ = ("n", "sum", "min", "max")

    def __init__(self) -> None:
        self.n = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, v: float) -> None:
        self.n += 1
        self.sum += v
        if v < self.min:
            self.min = v
        if v > self.max:
            self.max = v

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0


def input_power_w(sample: dict[str, Any], input_rails: list[str]) -> float | None:
    """Board power of one sample: the sum of the profile's input rails (or of
    every rail when the profile names none). None without rails."""
    rails = sample.get("rails") or {}
    if not rails:
        return None
    names = [r for r in input_rails if r in rails] if input_rails else list(rails)
    if input_rails and not names:
        return None
    return sum(rails[r].get("w", 0.0) for r in names)


class Sampler:
    def __init__(
        self,
        root: RootFS,
        profile: Profile,
        rate_hz: float = 10.0,
        *,
        host: bool = True,
        live_sources: bool | None = None,
        keep_open: bool = True,
    ) -> None:
        if not 0 < rate_hz <= 1000:
            raise ValueError("telemetry rate must be in (0, 1000] Hz")
        self.root = root
        self.profile = profile
        self.rate_hz = float(rate_hz)
        self.sysfs = SysfsReader(root, profile, keep_open=keep_open)
        self._want_host = host
        # jtop/tegrastats only make sense on the real board
        self._live = (str(root.root) == "/") if live_sources is None else live_sources
        self.sources: list[Any] = []
        self._ring: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=max(100, int(self.rate_hz * RING_SECONDS))
        )
        self._history: list[dict[str, Any]] = []
        self._history_step_ns = 1_000_000_000
        self._latest: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._series: IO[str] | None = None
        self._on_sample: Callable[[dict[str, Any]], None] | None = None
        self._reset_stats()

    def _reset_stats(self) -> None:
        self._temps: dict[str, _Stat] = {}
        self._clocks: dict[str, _Stat] = {}
        self._rails: dict[str, _Stat] = {}
        self._input = _Stat()
        self._cpu_util = _Stat()
        self._rss = _Stat()
        self.count = 0
        self.cpu_ns = 0  # CPU time the sampler thread spent sampling
        self._t_first = self._t_last = 0

    # --- sources ------------------------------------------------------------
    def _open_sources(self) -> None:
        self.sources = [self.sysfs]
        has_rails = bool(self.sysfs.rails)
        if self._live and self.profile.family == "jetson":
            from agent.telemetry.jtop import JtopSource

            jt = JtopSource(self.profile)
            if jt.open():
                self.sources.append(jt)
            elif not has_rails and shutil.which("tegrastats"):
                from agent.telemetry.tegrastats import TegrastatsSource

                ts = TegrastatsSource(self.profile, interval_ms=int(1000 / self.rate_hz))
                try:
                    ts.start()
                    self.sources.append(ts)
                except OSError as exc:
                    log.warning("tegrastats could not start (%s)", exc)
        if self._want_host:
            from agent.telemetry.host import HostSource

            self.sources.append(HostSource())

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources] if self.sources else ["sysfs"]

    # --- one sample ---------------------------------------------------------
    def read_once(self) -> dict[str, Any]:
        if not self.sources:
            self.sources = [self.sysfs]
        t = now_ns()
        sample: dict[str, Any] = {"t_ns": t, "temps_c": {}, "clocks_hz": {}, "rails": {}, "load": {}}
        for src in self.sources:
            part = src.read()
            for k, v in part.items():
                if isinstance(v, dict) and isinstance(sample.get(k), dict):
                    for kk, vv in v.items():
                        sample[k].setdefault(kk, vv)
                elif v is not None:
                    sample[k] = v
        return sample

    def _account(self, s: dict[str, Any]) -> None:
        self.count += 1
        if not self._t_first:
            self._t_first = s["t_ns"]
        self._t_last = s["t_ns"]
        for k, v in s["temps_c"].items():
            st = self._temps.get(k)
            if st is None:
                st = self._temps[k] = _Stat()
            st.add(v)
        for k, v in s["clocks_hz"].items():
            st = self._clocks.get(k)
            if st is None:
                st = self._clocks[k] = _Stat()
            st.add(v)
        for k, r in s["rails"].items():
            if "w" in r:
                st = self._rails.get(k)
                if st is None:
                    st = self._rails[k] = _Stat()
                st.add(r["w"])
        p = input_power_w(s, self.profile.input_rails)
        if p is not None:
            self._input.add(p)
        if "cpu_util" in s:
            self._cpu_util.add(s["cpu_util"])
        if "agent_rss_bytes" in s:
            self._rss.add(s["agent_rss_bytes"])

    def _take(self) -> None:
        c0 = time.thread_time_ns()
        s = self.read_once()
        if len(self._ring) == self._ring.maxlen:
            self._keep_history(self._ring[0])
        self._ring.append(s)
        self._latest = s
        self._account(s)
        if self._series is not None:
            self._series.write(json.dumps(s, separators=(",", ":")) + "\n")
        self.cpu_ns += time.thread_time_ns() - c0
        if self._on_sample is not None:
            try:
                self._on_sample(s)
            except Exception:  # a watcher's bug must not stop the telemetry
                log.exception("telemetry on_sample callback failed")

    def _keep_history(self, old: dict[str, Any]) -> None:
        h = self._history
        if h and old["t_ns"] - h[-1]["t_ns"] < self._history_step_ns:
            return
        h.append(old)
        if len(h) >= HISTORY_MAX:
            self._history = h[::2]
            self._history_step_ns *= 2

    # --- lifecycle ----------------------------------------------------------
    def start(
        self,
        series_path: Path | None = None,
        on_sample: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._reset_stats()
        self._ring.clear()
        self._history = []
        self._history_step_ns = 1_000_000_000
        self._open_sources()
        if series_path is not None:
            self._series = open(series_path, "a", encoding="utf-8")
        self._on_sample = on_sample
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="telemetry-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        last_flush = next_t
        while not self._stop.is_set():
            try:
                self._take()
            except Exception:
                log.exception("telemetry sample failed")
            now = time.monotonic()
            if self._series is not None and now - last_flush >= FLUSH_EVERY_S:
                self._series.flush()
                last_flush = now
            next_t += period
            delay = next_t - now
            if delay < 0:  # fell behind (suspended, overloaded): skip, don't burst
                next_t = now
                delay = 0
            self._stop.wait(delay)

    def stop(self) -> dict[str, Any]:
        """Stop and return ``telemetry{sources, rate_hz, summary}``."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
        if self._series is not None:
            self._series.close()
            self._series = None
        names = self.source_names
        for src in self.sources:
            if src is not self.sysfs:
                src.close()
        self.sources = []
        return {"sources": names, **self.summary()}

    def close(self) -> None:
        self.stop()
        self.sysfs.close()

    # --- views --------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        span_s = (self._t_last - self._t_first) / 1e9 if self.count > 1 else 0.0
        summ: dict[str, Any] = {
            "temps_c": {
                k: {"min": st.min, "max": st.max, "mean": round(st.mean, 3)} for k, st in self._temps.items()
            },
            "clocks_hz": {k: {"min": int(st.min), "max": int(st.max)} for k, st in self._clocks.items()},
            "rails_w": {
                k: {"mean": round(st.mean, 4), "max": round(st.max, 4)} for k, st in self._rails.items()
            },
        }
        if self._input.n:
            summ["input_w"] = {"mean": round(self._input.mean, 4), "max": round(self._input.max, 4)}
        if self._cpu_util.n:
            summ["cpu_util_mean"] = round(self._cpu_util.mean, 4)
        if self._rss.n:
            summ["agent_rss_max_bytes"] = int(self._rss.max)
        return {
            "rate_hz": self.rate_hz,
            "samples": self.count,
            "achieved_hz": round((self.count - 1) / span_s, 3) if span_s > 0 else None,
            "sampler_cpu_s": round(self.cpu_ns / 1e9, 6),
            "summary": summ,
        }

    def latest(self) -> dict[str, Any] | None:
        return self._latest

    def samples(self) -> list[dict[str, Any]]:
        """The run's samples, oldest first: thinned history, then the full-rate ring."""
        return self._history + list(self._ring)

    def window(self, t0_ns: int, t1_ns: int) -> dict[str, Any]:
        """Summary of the samples stamped in [t0_ns, t1_ns] (a soak window)."""
        temps: dict[str, _Stat] = {}
        clocks: dict[str, _Stat] = {}
        power = _Stat()
        n = 0
        for s in list(self._ring):
            if not t0_ns <= s["t_ns"] <= t1_ns:
                continue
            n += 1
            for k, v in s["temps_c"].items():
                temps.setdefault(k, _Stat()).add(v)
            for k, v in s["clocks_hz"].items():
                clocks.setdefault(k, _Stat()).add(v)
            p = input_power_w(s, self.profile.input_rails)
            if p is not None:
                power.add(p)
        return {
            "temps_c": {k: {"max": st.max, "mean": round(st.mean, 3)} for k, st in temps.items()},
            "clocks_hz": {k: {"min": int(st.min), "mean": int(st.mean)} for k, st in clocks.items()},
            "power_w": round(power.mean, 4) if power.n else None,
            "samples": n,
        }
