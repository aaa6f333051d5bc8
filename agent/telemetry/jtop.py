"""jtop backend (jetson-stats): when the jtop service answers it gives rails,
engines (DLA, NVENC...), the nvpmodel and jetson_clocks state. jetson-stats is
optional and imported lazily; when it is absent, or its service does not
answer, this says so once and the sampler reads sysfs instead.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.profiles import Profile

log = logging.getLogger("edgebench.telemetry")
_said: set[str] = set()


def _once(msg: str) -> None:
    if msg not in _said:
        _said.add(msg)
        log.warning(msg)


def from_jtop(
    profile: Profile,
    power: dict[str, Any] | None,
    temperature: dict[str, Any] | None,
    engine: dict[str, Any] | None,
) -> dict[str, Any]:
    """jtop's dicts -> sample keys. jtop gives rails as {'rail': {name: {volt
    (mV), curr (mA), power (mW), online}}}, temperatures as {name: {temp,
    online}} and engines as {group: {name: {online, cur (kHz)}}}."""
    rails: dict[str, dict[str, float]] = {}
    for name, r in ((power or {}).get("rail") or {}).items():
        if not r.get("online", True):
            continue
        v = r.get("volt", 0) / 1000.0
        a = r.get("curr", 0) / 1000.0
        rails[profile.rail_name(name)] = {"v": v, "a": a, "w": r.get("power", v * a * 1000.0) / 1000.0}
    temps = {}
    for name, t in (temperature or {}).items():
        if t.get("online", True) and t.get("temp", -256) > -256:
            # jtop names a zone by its type cut at the first - or _ (CPU-therm
            # -> CPU, Tboard_tegra -> Tboard), never by the whole type
            temps[profile.zone_for_short(name)] = float(t["temp"])
    engines = {}
    for group in (engine or {}).values():
        for name, e in group.items():
            engines[name] = (e.get("cur", 0) * 1000) if e.get("online") else 0
    return {"rails": rails, "temps_c": temps, "engines_hz": engines}


class JtopSource:
    name = "jtop"

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._jetson: Any = None
        self.reason: str | None = None

    def open(self) -> bool:
        """True when the jtop service answered; else says why, once."""
        try:
            from jtop import jtop  # type: ignore[import-not-found]
        except ImportError:
            self.reason = "jetson-stats (jtop) is not installed; reading sysfs"
            _once(self.reason)
            return False
        try:
            j = jtop()
            j.start()
            if not j.ok():
                raise RuntimeError("no data")
        except Exception as exc:  # jtop raises its own JtopException types
            why = " ".join(str(exc).split()) or type(exc).__name__  # jtop's messages span lines
            self.reason = f"jtop service is not answering ({why}); reading sysfs"
            _once(self.reason)
            return False
        self._jetson = j
        return True

    def read(self) -> dict[str, Any]:
        j = self._jetson
        if j is None:
            return {}
        try:
            out = from_jtop(self.profile, j.power, j.temperature, j.engine)
            out["nvpmodel"] = str(j.nvpmodel) if j.nvpmodel is not None else None
            out["jetson_clocks"] = bool(j.jetson_clocks) if j.jetson_clocks is not None else None
            return out
        except Exception as exc:  # the service went away mid-run: fall back quietly
            _once(f"jtop stopped answering ({exc}); reading sysfs")
            self.close()
            return {}

    def close(self) -> None:
        if self._jetson is not None:
            try:
                self._jetson.close()
            except Exception:
                pass
            self._jetson = None
