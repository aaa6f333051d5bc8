"""Hardware profiles (``hw-profiles/*.yaml``): everything board-specific lives in
these files, never in code. A profile says how to recognise the board, which
thermal zones / clocks / rails it has and what they are called, the power
budget, and which runtime + provider/delegate reaches each accelerator.

Search path for profile files: ``$EDGEBENCH_PROFILES_DIR`` (``:``-separated),
then ``/etc/edgebench/hw-profiles``, then the repo's ``hw-profiles/`` next to
the package (``<prefix>/share/edgebench/hw-profiles`` for a wheel install).
A name found earlier wins, so a board's own copy overrides a shipped one.

Validation is ``agent.schema``'s walk (no jsonschema on boards): a bad file
raises BadInput naming the file and the field, e.g.
``hw-profiles/x.yaml: clocks.gpu.source: expected one of cpufreq, devfreq``.

Just over 400 lines because the profile is one contract: its schema, its
dataclass and the detection of the board it describes.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from agent.names import RUNTIMES
from agent.rootfs import RootFS
from agent.schema import NUMBER, SchemaError, dotted, walk

FALLBACK = "generic-linux"
RAIL_DRIVERS = ("ina3221", "ina3221x")
CLOCK_SOURCES = ("cpufreq", "devfreq")


def search_path() -> list[Path]:
    dirs: list[Path] = []
    env = os.environ.get("EDGEBENCH_PROFILES_DIR")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    # the board's own configuration overrides what the package ships
    dirs.append(Path("/etc/edgebench/hw-profiles"))
    dirs.append(Path(__file__).resolve().parent.parent / "hw-profiles")
    dirs.append(Path(sys.prefix) / "share" / "edgebench" / "hw-profiles")
    return dirs


# --- schema -----------------------------------------------------------------
# schema nodes as agent/schema.py defines them: a type, a tuple of types,
# {"enum"}, {"list"}, {"map"} or {"fields": {name: (node, required)}}

_STR_LIST = {"list": str}
_STR_MAP = {"map": str}
_NUM = NUMBER

_CLOCK = {
    "fields": {
        "source": ({"enum": CLOCK_SOURCES}, True),
        "of_node": (_STR_LIST, False),  # devfreq: device-tree node names (ga10b, gpu...)
        "load": (bool, False),  # devfreq: the device has a per-mille `load` file
        "policies": ({"list": int}, False),  # cpufreq: restrict to these policies
        # the clock this domain should hold under load (e.g. the nvpmodel's
        # cap): a soak flags any drop below it, not only below the observed max
        "expected_hz": (_NUM, False),
    }
}
_ACCEL = {
    "fields": {
        "runtime": ({"enum": RUNTIMES}, True),
        "providers": (_STR_LIST, False),
        "provider_options": ({"map": _STR_MAP}, False),
        "delegate": (str, False),
        "delegate_options": (_STR_MAP, False),
        "env": (_STR_MAP, False),
        "description": (str, False),
        # other --accelerator names this entry answers for a model of its
        # runtime (AM62A: the TIDL TFLite delegate serves npu/dsp for .tflite)
        "serves": (_STR_LIST, False),
    }
}
SCHEMA: dict[str, Any] = {
    "fields": {
        "name": (str, True),
        "description": (str, True),
        "family": ({"enum": ("jetson", "imx", "ti-k3", "generic")}, True),
        "soc": (str, True),
        "detect": (
            {
                "fields": {
                    "compatible": (_STR_LIST, False),
                    "soc_id": (_STR_LIST, False),
                    "model": (_STR_LIST, False),
                    "fallback": (bool, False),
                }
            },
            True,
        ),
        "thermal": (
            {"fields": {"zones": (_STR_MAP, True), "hide": (_STR_LIST, False)}},
            False,
        ),
        "clocks": ({"map": _CLOCK}, False),
        "power": (
            {
                "fields": {
                    "driver": ({"enum": RAIL_DRIVERS}, False),
                    "rails": (_STR_MAP, False),  # sensor label -> stable rail name
                    "input_rails": (_STR_LIST, False),  # summed = board power
                    "supply": (
                        {"fields": {"volts": (_NUM, True), "max_watts": (_NUM, True)}},
                        False,
                    ),
                }
            },
            False,
        ),
        "accelerators": ({"map": _ACCEL}, False),
        # what the portability guard compares an engine against when sysfs
        # does not say: the GPU's CUDA compute capability x10 (sm_87 -> 87)
        # and the number of DLA cores
        "gpu": ({"fields": {"sm": (int, True)}}, False),
        "dla_cores": (int, False),
    }
}


def _check(value: Any, schema: Any, fname: str) -> None:
    """The profile against SCHEMA (``agent.schema.walk``), its first problem
    said as ``FILE: field.path: what``."""
    try:
        walk(value, schema)
    except SchemaError as e:
        where = dotted(e.path)
        if e.kind == "unknown":
            raise BadInput(f"{fname}: {where}: unknown field") from None
        if e.kind == "missing":
            raise BadInput(f"{fname}: {where}: required field missing") from None
        if e.kind == "enum":
            msg = f"expected one of {e.expected}, got {e.value!r}"
        elif e.expected in ("list", "mapping"):
            msg = f"expected a {e.expected}, got {type(e.value).__name__}"
        elif isinstance(e.value, bool) and e.expected in ("int", "float", "int/float"):
            msg = "expected a number, got bool"
        else:
            msg = f"expected {e.expected}, got {type(e.value).__name__}"
        raise BadInput(f"{fname}: {where or '<top>'}: {msg}") from None


# --- the profile -------------------------------------------------------------


def short_zone_name(zone_type: str) -> str:
    """The name tegrastats and jtop give a thermal zone: its type up to the
    first ``-``, else up to the first ``_`` (jetson-stats'
    jtop/core/temperature.py does this): ``CPU-therm`` (L4T R35) -> ``CPU``,
    ``cpu-thermal`` (R36) -> ``cpu``, ``Tboard_tegra`` -> ``Tboard``,
    ``thermal-fan-est`` -> ``thermal``."""
    return zone_type.split("-", 1)[0] if "-" in zone_type else zone_type.split("_", 1)[0]


@dataclass
class Profile:
    name: str
    description: str
    family: str
    soc: str
    detect: dict[str, Any]
    zones: dict[str, str] = field(default_factory=dict)  # zone type -> stable name
    hide_zones: list[str] = field(default_factory=list)
    clocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    power: dict[str, Any] | None = None
    accelerators: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None
    gpu_sm: int | None = None
    dla_cores: int | None = None

    @classmethod
    def from_dict(cls, data: Any, fname: str = "<profile>") -> Profile:
        _check(data, SCHEMA, fname)
        thermal = data.get("thermal") or {}
        power = data.get("power")
        if power is not None:
            rails = power.get("rails") or {}
            for r in power.get("input_rails") or []:
                if rails and r not in rails.values() and r not in rails:
                    raise BadInput(f"{fname}: power.input_rails: {r!r} is not a rail of this profile")
        for name, clk in (data.get("clocks") or {}).items():
            if clk["source"] == "devfreq" and not clk.get("of_node"):
                raise BadInput(f"{fname}: clocks.{name}.of_node: required for a devfreq clock")
        for name, acc in (data.get("accelerators") or {}).items():
            if acc["runtime"] == "onnxruntime" and not acc.get("providers"):
                raise BadInput(f"{fname}: accelerators.{name}.providers: required for onnxruntime")
            if acc.get("delegate") and acc["runtime"] != "litert":
                raise BadInput(f"{fname}: accelerators.{name}.delegate: only for runtime litert")
        return cls(
            name=data["name"],
            description=data["description"],
            family=data["family"],
            soc=data["soc"],
            detect=data["detect"],
            zones=dict(thermal.get("zones") or {}),
            hide_zones=list(thermal.get("hide") or []),
            clocks=dict(data.get("clocks") or {}),
            power=power,
            accelerators=dict(data.get("accelerators") or {}),
            path=fname,
            gpu_sm=(data.get("gpu") or {}).get("sm"),
            dla_cores=data.get("dla_cores"),
        )

    # what a run with --accelerator NAME needs
    def accelerator(self, name: str, runtime: str | None = None) -> dict[str, Any]:
        """The runtime, providers/delegate, options and environment that reach
        accelerator ``name``; with ``runtime``, the entry for that runtime (an
        entry keyed ``name``, else one whose ``serves`` lists it)."""
        candidates = [(name, self.accelerators[name])] if name in self.accelerators else []
        candidates += [(k, a) for k, a in self.accelerators.items() if name in (a.get("serves") or [])]
        if not candidates:
            have = sorted(
                set(self.accelerators)
                | {s for a in self.accelerators.values() for s in a.get("serves") or []}
            )
            raise BadInput(
                f"profile {self.name} has no accelerator {name!r}; available: {', '.join(have) or 'none'}"
            )
        if runtime is not None:
            fitting = [(k, a) for k, a in candidates if a["runtime"] == runtime]
            if not fitting:
                runs = " or ".join(sorted({a["runtime"] for _, a in candidates}))
                raise BadInput(
                    f"accelerator {name!r} of profile {self.name} is reached through {runs}, "
                    f"not {runtime}; convert the model for that runtime"
                )
            candidates = fitting
        key, acc = candidates[0]
        return {
            "name": name,
            "entry": key,
            "profile": self.name,
            "runtime": acc["runtime"],
            "providers": list(acc.get("providers") or []),
            "provider_options": {k: dict(v) for k, v in (acc.get("provider_options") or {}).items()},
            "delegate": acc.get("delegate"),
            "delegate_options": dict(acc.get("delegate_options") or {}),
            "env": dict(acc.get("env") or {}),
        }

    def zone_name(self, zone_type: str) -> str:
        """Stable name for a zone type; unknown zones keep their (sanitised) type."""
        if zone_type in self.zones:
            return self.zones[zone_type]
        return zone_type.strip().replace(" ", "_") or "zone"

    def zone_for_short(self, short: str) -> str:
        """Stable name for a zone as tegrastats and jtop name it (``CPU``,
        ``cpu``, ``Tboard``, ``tj``): the profile zone with that short name.
        The exact spelling wins; then any case, so that a profile listing
        only one L4T release's zone types still names the other's. Unknown
        zones keep the short name, lowercased."""
        if short in self.zones:
            return self.zones[short]
        folded = short.casefold()
        loose = None
        for ztype, name in self.zones.items():
            s = short_zone_name(ztype)
            if s == short:
                return name
            if loose is None and s.casefold() == folded:
                loose = name
        return loose if loose is not None else short.lower()

    def rail_name(self, label: str) -> str:
        rails = (self.power or {}).get("rails") or {}
        return rails.get(label, label)

    @property
    def input_rails(self) -> list[str]:
        return list((self.power or {}).get("input_rails") or [])

    @property
    def budget(self) -> dict[str, float] | None:
        sup = (self.power or {}).get("supply")
        if not sup:
            return None
        return {"supply_v": float(sup["volts"]), "budget_w": float(sup["max_watts"])}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "family": self.family,
            "soc": self.soc,
            "accelerators": sorted(self.accelerators),
            "power_budget": self.budget,
            "path": self.path,
        }


# --- loading ----------------------------------------------------------------


def _read_yaml(path: Path) -> Any:
    import yaml  # light, and only needed when profiles are loaded

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise BadInput(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None


def load_file(path: str | os.PathLike[str]) -> Profile:
    p = Path(path)
    prof = Profile.from_dict(_read_yaml(p), str(p))
    if prof.name != p.stem:
        raise BadInput(f"{p}: name: {prof.name!r} does not match the file name {p.stem!r}")
    return prof


def available(dirs: list[Path] | None = None) -> dict[str, Path]:
    """name -> file, earlier directories win."""
    found: dict[str, Path] = {}
    for d in dirs if dirs is not None else search_path():
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return found


def load(name: str, dirs: list[Path] | None = None) -> Profile:
    files = available(dirs)
    if name not in files:
        have = ", ".join(sorted(files)) or "none"
        raise BadInput(f"unknown hardware profile {name!r}; available: {have}")
    return load_file(files[name])


def load_all(dirs: list[Path] | None = None) -> list[Profile]:
    return [load_file(p) for p in available(dirs).values()]


# --- detection --------------------------------------------------------------


def board_identity(root: RootFS) -> dict[str, Any]:
    """What the board says about itself: DT model + compatible, soc0 attributes."""
    compat_raw = root.read_bytes("/proc/device-tree/compatible")
    compatible = [c.decode("utf-8", "replace") for c in compat_raw.split(b"\x00") if c] if compat_raw else []
    model = root.read_text("/proc/device-tree/model")
    if not model:  # x86 and other ACPI boxes: DMI names the machine
        vendor = root.read_text("/sys/class/dmi/id/sys_vendor")
        product = root.read_text("/sys/class/dmi/id/product_name")
        model = " ".join(x for x in (vendor, product) if x) or None
    soc = {k: root.read_text(f"/sys/devices/soc0/{k}") for k in ("soc_id", "family", "machine", "revision")}
    return {"model": model, "compatible": compatible, "soc0": soc}


# Weights: a compatible string names the exact module; the model string is
# free text; the soc id is shared by a whole SoC family.
_W_COMPAT, _W_MODEL, _W_SOC = 4, 2, 1


def score(profile: Profile, ident: dict[str, Any]) -> int:
    det = profile.detect
    s = 0
    pats = det.get("compatible") or []
    if pats and any(fnmatch.fnmatchcase(c, p) for c in ident["compatible"] for p in pats):
        s += _W_COMPAT
    model = ident.get("model") or ""
    if model and any(fnmatch.fnmatchcase(model, p) for p in det.get("model") or []):
        s += _W_MODEL
    socvals = [v for v in (ident["soc0"].get("soc_id"), ident["soc0"].get("family")) if v]
    if socvals and any(fnmatch.fnmatchcase(v, p) for v in socvals for p in det.get("soc_id") or []):
        s += _W_SOC
    return s


def detect(root: RootFS, dirs: list[Path] | None = None) -> Profile:
    """The best-matching profile, else the fallback (generic-linux). A match
    needs more than the SoC id alone (Orin Nano, NX and AGX share one)."""
    ident = board_identity(root)
    best: tuple[int, str] | None = None
    profiles = load_all(dirs)
    for p in profiles:
        if p.detect.get("fallback"):
            continue
        sc = score(p, ident)
        if sc > _W_SOC and (best is None or sc > best[0]):
            best = (sc, p.name)
    by_name = {p.name: p for p in profiles}
    if best is not None:
        return by_name[best[1]]
    for p in profiles:
        if p.detect.get("fallback"):
            return p
    raise BadInput(f"no hardware profile matches this board and no {FALLBACK} fallback was found")


def resolve(root: RootFS, name: str | None = "auto", dirs: list[Path] | None = None) -> Profile:
    """``--profile NAME|auto``."""
    if not name or name == "auto":
        return detect(root, dirs)
    return load(name, dirs)
