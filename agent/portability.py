"""The portability guard: what an artifact needs from the board (GPU SM,
TensorRT, L4T / JetPack release, DLA cores, profile, SoC), where those needs
come from, and whether this board meets them.

A TensorRT engine built on one Jetson fails on another, late and cryptically;
the agent refuses such an artifact before a run exists, in one line that names
each difference.

Requirements, ``key=value`` (exact; versions match by prefix, so
``tensorrt=10.3`` accepts 10.3.0.30), ``key>=value`` or ``key<=value``, come from:

- the push (``edgebench push --requires sm=87``), stored with the artifact;
- the artifact's name: ONNX Runtime's TensorRT EP names its engine caches
  ``..._sm87.engine`` (``_sm80+`` for an Ampere-and-newer compatible engine);
- an ONNX EP-context model: the ``EPContext`` node's ``hardware_arch``
  attribute (``hardware_architecture`` before ORT 1.18), e.g. ``"87"``;
- a sidecar ``<file>.json`` beside the file on the host, written by whoever
  built it: ``{"requires": {"sm": 87, "tensorrt": "10.3", "dla_cores": ">=1"}}``
  (read by the controller at push).

Runtime-free and numpy-free: the agent's main process runs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import onnx_proto
from agent.errors import BadInput
from agent.store.artifacts import ArtifactStore

KEYS = ("tensorrt", "sm", "l4t", "jetpack", "dla_cores", "profile", "soc")
_VERSION_KEYS = ("tensorrt", "l4t", "jetpack")
_INT_KEYS = ("sm", "dla_cores")
_NAME_KEYS = ("profile", "soc")
_SYNTAX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|=)\s*(\S.*?)\s*$")
_VERSION = re.compile(r"^\d+(?:\.\d+)*$")
# TensorRT EP cache names end in _sm<cc> before the extension (ORT's
# tensorrt_execution_provider.cc: cache_hw_compat = "_sm" + compute_capability,
# "_sm80+" with trt_engine_hw_compatible).
_NAME_SM = re.compile(r"_sm(\d{2,3})(\+?)\.[A-Za-z0-9]+$")
_HW_ARCH = re.compile(r"^(\d{2,3})(\+?)$")
_EPCONTEXT_ATTRS = ("hardware_arch", "hardware_architecture")
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", ">=", "<="
    value: str  # normalised: sm "87", l4t "36.4" (no R), dla_cores "1"
    source: str = "declared"

    def __str__(self) -> str:
        # l4t keeps its R: the form users type and /etc/nv_tegra_release shows
        return f"{self.key}{self.op}{'R' if self.key == 'l4t' else ''}{self.value}"

    def label(self) -> str:
        """How the message names it: ``sm_87``, ``TensorRT >= 10.3``."""
        if self.op == "=":
            return _board_label(self.key, self.value)
        return f"{_NAMES[self.key]} {self.op} {_PREFIX.get(self.key, '')}{self.value}"


_NAMES = {
    "tensorrt": "TensorRT",
    "sm": "sm",
    "l4t": "L4T",
    "jetpack": "JetPack",
    "dla_cores": "DLA cores",
    "profile": "profile",
    "soc": "soc",
}
_PREFIX = {"sm": "sm_", "l4t": "R"}


def _board_label(key: str, value: Any) -> str:
    if value is None:
        return {"tensorrt": "no TensorRT", "l4t": "no L4T", "jetpack": "no JetPack"}.get(
            key, f"{_NAMES[key]} unknown"
        )
    return {
        "sm": f"sm_{value}",
        "tensorrt": f"TensorRT {value}",
        "l4t": f"R{value}",
        "jetpack": f"JetPack {value}",
        "dla_cores": f"{value} DLA core{'' if str(value) == '1' else 's'}",
        "profile": f"profile {value}",
        "soc": f"soc {value}",
    }[key]


# --- parsing ------------------------------------------------------------------


def _sm_value(text: str) -> int | None:
    """``87``, ``sm_87``, ``sm87``, ``8.7`` -> 87 (CUDA's compute capability x10)."""
    t = text.strip().lower()
    t = t[3:] if t.startswith("sm_") else t[2:] if t.startswith("sm") else t
    m = re.fullmatch(r"(\d+)\.(\d)", t)
    if m:
        return int(m.group(1)) * 10 + int(m.group(2))
    return int(t) if t.isdigit() else None


def parse(text: str, source: str = "declared") -> Requirement:
    """One requirement; BadInput (one line) for bad syntax, keys or values."""
    m = _SYNTAX.match(text or "")
    if not m:
        raise BadInput(f"requirement {text!r}: expected KEY=VALUE, KEY>=VALUE or KEY<=VALUE")
    key, op, value = m.group(1).lower(), m.group(2), m.group(3)
    if key not in KEYS:
        raise BadInput(f"requirement {text!r}: unknown key {key!r}; known: {', '.join(sorted(KEYS))}")
    if key == "sm":
        sm = _sm_value(value)
        if sm is None:
            raise BadInput(f"requirement {text!r}: sm must be a compute capability like 87, sm_87 or 8.7")
        value = str(sm)
    elif key == "dla_cores":
        if not value.isdigit():
            raise BadInput(f"requirement {text!r}: dla_cores must be a whole number")
        value = str(int(value))
    elif key in _VERSION_KEYS:
        if key == "l4t" and value[:1] in "Rr":
            value = value[1:]
        if not _VERSION.match(value):
            raise BadInput(f"requirement {text!r}: {key} must be a version like 10.3 or R36.4")
    elif op != "=":
        raise BadInput(f"requirement {text!r}: {key} is a name; only {key}=VALUE applies")
    return Requirement(key, op, value, source)


def parse_all(texts: Iterable[str], source: str = "declared") -> list[Requirement]:
    return _unique(parse(t, source) for t in texts)


def _unique(reqs: Iterable[Requirement]) -> list[Requirement]:
    seen: set[str] = set()
    out = []
    for r in reqs:
        if str(r) not in seen:
            seen.add(str(r))
            out.append(r)
    return out


# --- reading an artifact ---------------------------------------------------------


def from_name(name: str) -> list[Requirement]:
    """``..._sm87.engine`` -> sm=87; ``..._sm80+.engine`` -> sm>=80."""
    m = _NAME_SM.search(name or "")
    if not m:
        return []
    return [Requirement("sm", ">=" if m.group(2) else "=", str(int(m.group(1))), "name")]


def from_onnx(path: Path) -> list[Requirement]:
    """The SM an EP-context model's engines were built for (EPContext
    ``hardware_arch``); nothing for other ONNX models or non-ONNX bytes."""
    try:
        nodes = onnx_proto.read_nodes(path, op_types={"EPContext"})
    except (OSError, ValueError, UnicodeDecodeError):
        return []  # not ONNX, or cut short: the run's own checks say so
    out = []
    for node in nodes:
        for attr in _EPCONTEXT_ATTRS:
            raw = node.attributes.get(attr)
            if not isinstance(raw, bytes):
                continue
            m = _HW_ARCH.match(raw.decode("utf-8", "replace").strip())
            if m:  # other EPs put other things here: only a compute capability counts
                out.append(Requirement("sm", ">=" if m.group(2) else "=", str(int(m.group(1))), "EPContext"))
    return _unique(out)


def from_artifact(path: Path, name: str) -> list[Requirement]:
    """What the artifact itself says: its name, and an ONNX EP-context node."""
    reqs = from_name(name)
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError:
        head = b""
    if head == b"\x08":  # an ONNX ModelProto starts with ir_version (field 1, varint)
        reqs += from_onnx(path)
    return _unique(reqs)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def from_sidecar(path: Path) -> list[Requirement]:
    """``<file>.json`` beside an artifact: ``{"requires": {"sm": 87, "tensorrt":
    "10.3", "dla_cores": ">=1"}}``; a value may start with ``>=``/``<=``. No
    sidecar, or one without ``requires``, is no requirement."""
    side = sidecar_path(Path(path))
    try:
        text = side.read_text(encoding="utf-8")
    except OSError:
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadInput(f"{side}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "requires" not in data:
        return []
    reqs = data["requires"]
    if not isinstance(reqs, dict):
        raise BadInput(f'{side}: "requires" must be an object like {{"sm": 87, "tensorrt": "10.3"}}')
    out = []
    for key, value in reqs.items():
        v = str(value).strip()
        op = v[:2] if v[:2] in (">=", "<=") else "="
        v = v[2:] if op != "=" else v.lstrip("=")
        try:
            out.append(parse(f"{key}{op}{v}", "sidecar"))
        except BadInput as exc:
            raise BadInput(f"{side}: {exc}") from None
    return out


# --- the board ----------------------------------------------------------------------


def board_facts(info: dict[str, Any]) -> dict[str, Any]:
    """What the fingerprint (edgebench.info/v1) says for each key; None = unknown."""
    gpu = info.get("gpu") or {}
    dla = info.get("dla") or {}
    trt = info.get("tensorrt") or {}
    l4t = info.get("l4t") or {}
    return {
        "sm": gpu.get("sm"),
        "dla_cores": dla.get("cores"),
        "tensorrt": trt.get("version"),
        "l4t": l4t.get("release"),
        "jetpack": info.get("jetpack"),
        "profile": info.get("profile"),
        "soc": info.get("soc"),
    }


def _version(text: Any) -> tuple[int, ...] | None:
    m = re.match(r"\s*[Rr]?(\d+(?:\.\d+)*)", str(text)) if text is not None else None
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def _compare(op: str, have: tuple[int, ...], want: tuple[int, ...]) -> bool:
    if op == "=":
        return have == want
    return have >= want if op == ">=" else have <= want


def satisfied(req: Requirement, have: Any) -> bool:
    if have is None:
        return False  # a need this board cannot show it meets is not met
    if req.key in _VERSION_KEYS:
        hv, want = _version(have), _version(req.value)
        if hv is None or want is None:
            return False
        # compare on the requirement's precision: 10.3 covers 10.3.0.30
        return _compare(req.op, hv[: len(want)] + (0,) * (len(want) - len(hv)), want)
    if req.key in _INT_KEYS:
        try:
            return _compare(req.op, (int(have),), (int(req.value),))
        except (TypeError, ValueError):
            return False
    return str(have).lower() == req.value.lower()


def mismatch(reqs: Iterable[Requirement], info: dict[str, Any], name: str = "") -> str | None:
    """None when the board meets every requirement, else the one line naming
    each difference: ``m.engine built for sm_87 / TensorRT 10.3; this board is
    sm_72 / TensorRT 8.5.2``."""
    facts = board_facts(info)
    failed = [r for r in _unique(reqs) if not satisfied(r, facts[r.key])]
    if not failed:
        return None
    keys = list(dict.fromkeys(r.key for r in failed))
    wants = " / ".join(r.label() for r in failed)
    haves = " / ".join(_board_label(k, facts[k]) for k in keys)
    return f"{name or 'artifact'} built for {wants}; this board is {haves}"


# --- the agent's side ------------------------------------------------------------------


def of_stored(store: ArtifactStore, sha256: str) -> list[Requirement]:
    """A stored artifact's requirements: declared at push, plus what its name
    and bytes say. Empty when it is not stored."""
    path = store.path(sha256)
    if path is None:
        return []
    declared = [parse(t, "declared") for t in store.requires(sha256)]
    return _unique(declared + from_artifact(path, store.name(sha256)))


def guard(store: ArtifactStore, sha256: str, info: Callable[[], dict[str, Any]]) -> None:
    """BadInput naming each difference when this board cannot run the stored
    artifact; the fingerprint is only asked for when there is something to check."""
    reqs = of_stored(store, sha256)
    if reqs:
        line = mismatch(reqs, info(), store.name(sha256))
        if line:
            raise BadInput(line)
