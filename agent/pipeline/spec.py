"""The pipeline part of a run spec (``RunSpec.pipeline``), checked where the
agent receives it: stage kinds, their options, and that each stage takes what
the one before it gives (a crop needs boxes, a ctc decode needs a model's
scores). Shapes are checked again by the worker once the models are loaded.

No numpy here: the agent process validates specs while idle.

Wire form::

    {"pipelines": [{"name": "ocr", "streams": 1, "stages": [
        {"stage": "resize", "name": "resize", "size": [320, 320]}, ...]}],
     "keep_outputs": 16}
"""

from __future__ import annotations

import math
import re
from typing import Any

from agent.errors import BadInput

# what flows between stages
IMAGE = "image"  # uint8 HxWx3, or a batch NxHxWx3 after a crop
TENSOR = "tensor"  # a normalised array a model takes
OUTPUTS = "outputs"  # a model's output arrays
BOXES = "boxes"  # Kx4 xyxy in the frame's pixels, with scores
LABELS = "labels"  # top-k classes per item
TEXTS = "texts"  # decoded strings per item
ANY = "any"  # after a user stage: not known until it runs

# stage kind -> (what it takes, what it gives)
FLOW: dict[str, tuple[tuple[str, ...], str]] = {
    "letterbox": ((IMAGE,), IMAGE),
    "resize": ((IMAGE,), IMAGE),
    "normalize": ((IMAGE,), TENSOR),
    "model": ((TENSOR,), OUTPUTS),
    "db_post": ((OUTPUTS,), BOXES),
    "yolo": ((OUTPUTS,), BOXES),
    "topk": ((OUTPUTS,), LABELS),
    "ctc": ((OUTPUTS,), TEXTS),
    "crop": ((BOXES,), IMAGE),
    "code": ((IMAGE, TENSOR, OUTPUTS, BOXES, LABELS, TEXTS), ANY),
}
MAX_STAGES = 64
MAX_STREAMS = 16
MAX_PIPELINES = 8
MAX_SIDE = 8192
_SHA = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
LAYOUTS = ("nchw", "nhwc")
DTYPES = ("float32", "float16", "uint8", "int8")

# option -> (kind checker, default); None default = required
_POS = "positive number"


def _size(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_int(d) and 0 < d <= MAX_SIDE for d in v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _triple(v: Any) -> bool:
    return _num(v) or (isinstance(v, list) and len(v) in (1, 3) and all(_num(x) for x in v))


def _sha(v: Any) -> bool:
    return isinstance(v, str) and bool(_SHA.match(v))


def _str(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 200


def _strs(v: Any) -> bool:
    return isinstance(v, list) and all(_str(x) for x in v)


def _opts(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str)
        and isinstance(o, dict)
        and all(isinstance(a, str) and isinstance(b, str) for a, b in o.items())
        for k, o in v.items()
    )


def _ratio(v: Any) -> bool:
    return _num(v) and 0 <= v <= 1


def _posnum(v: Any) -> bool:
    return _num(v) and v > 0


def _count(v: Any) -> bool:
    return _int(v) and 1 <= v <= 100_000


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _u8(v: Any) -> bool:
    return _int(v) and 0 <= v <= 255


def _choice(*options: str) -> Any:
    def check(v: Any) -> bool:
        return v in options

    check.__doc__ = "one of " + ", ".join(options)
    return check


_REQ = object()
# resize/letterbox/crop: OpenCV's cv2.resize where the board has it (auto), or numpy
_BACKEND = (_choice("auto", "numpy", "opencv"), "auto", "auto, numpy or opencv")
OPTIONS: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "letterbox": {"size": (_size, _REQ, "[height, width]"), "pad": (_u8, 114, "0-255"), "backend": _BACKEND},
    "resize": {"size": (_size, _REQ, "[height, width]"), "backend": _BACKEND},
    "normalize": {
        "mean": (_triple, 0.0, "a number or 3 numbers"),
        "std": (_triple, 1.0, "a number or 3 numbers"),
        "scale": (_posnum, 1 / 255, _POS),
        "layout": (_choice(*LAYOUTS), "nchw", "nchw or nhwc"),
        "dtype": (_choice(*DTYPES), "float32", ", ".join(DTYPES)),
    },
    "model": {
        "model_sha256": (_sha, _REQ, "64 hex digits"),
        "model_name": (_str, "model", "a string"),
        "runtime": (_choice("onnxruntime", "litert"), None, "onnxruntime or litert"),
        "providers": (_strs, [], "a list of provider names"),
        "provider_options": (_opts, {}, "{provider: {K: V}}"),
        "delegate": (_str, None, "a path"),
        "threads": (lambda v: _int(v) and 1 <= v <= 1024, None, "1-1024"),
    },
    "db_post": {
        "thresh": (_ratio, 0.3, "in [0, 1]"),
        "box_thresh": (_ratio, 0.5, "in [0, 1]"),
        "unclip_ratio": (lambda v: _num(v) and 0 <= v <= 10, 1.6, "in [0, 10]"),
        "min_size": (lambda v: _num(v) and v >= 0, 3, "a number >= 0"),
        "max_candidates": (_count, 1000, "1-100000"),
        "dilate": (_bool, True, "true or false"),
    },
    "yolo": {
        "layout": (_choice("yolov8", "yolov5", "picodet"), "yolov8", "yolov8, yolov5 or picodet"),
        "score": (_ratio, 0.25, "in [0, 1]"),
        "iou": (_ratio, 0.45, "in [0, 1]"),
        "max_boxes": (_count, 300, "1-100000"),
        "output": (lambda v: _int(v) and v >= 0, 0, "an output index"),
    },
    "topk": {"k": (_count, 5, "1-100000"), "output": (lambda v: _int(v) and v >= 0, 0, "an output index")},
    "ctc": {
        "characters_sha256": (_sha, None, "64 hex digits (a keys file)"),
        "space": (_bool, True, "true or false"),
        "output": (lambda v: _int(v) and v >= 0, 0, "an output index"),
    },
    "crop": {
        "size": (_size, _REQ, "[height, width]"),
        "pad": (_u8, 0, "0-255"),
        "keep_ratio": (_bool, True, "true or false"),
        "max_items": (_count, 64, "1-100000"),
        "margin": (lambda v: _int(v) and 0 <= v <= 256, 0, "0-256 pixels"),
        "backend": _BACKEND,
    },
    "code": {
        "code_sha256": (_sha, _REQ, "64 hex digits"),
        "code_name": (_str, "stage.py", "a string"),
        "function": (lambda v: isinstance(v, str) and v.isidentifier(), "stage", "a Python name"),
    },
}


def check(pipeline: Any) -> dict[str, Any]:
    """The pipeline part, checked and with every default filled in; BadInput
    naming the stage (``pipeline ocr stage 4 (crop): ...``) otherwise."""
    if not isinstance(pipeline, dict):
        raise BadInput("pipeline must be an object")
    unknown = sorted(set(pipeline) - {"pipelines", "keep_outputs"})
    if unknown:
        raise BadInput(f"unknown pipeline field(s): {', '.join(unknown)[:60]}")
    pls = pipeline.get("pipelines")
    if not isinstance(pls, list) or not 1 <= len(pls) <= MAX_PIPELINES:
        raise BadInput(f"pipeline needs 1 to {MAX_PIPELINES} pipelines")
    keep = pipeline.get("keep_outputs", 16)
    if not (_int(keep) and 0 <= keep <= 1000):
        raise BadInput("pipeline keep_outputs must be an integer in [0, 1000]")
    out, names = [], set()
    for i, p in enumerate(pls):
        one = _check_one(p, i)
        if one["name"] in names:
            raise BadInput(f"two pipelines are named {one['name']!r}")
        names.add(one["name"])
        out.append(one)
    return {"pipelines": out, "keep_outputs": keep}


def _check_one(p: Any, i: int) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise BadInput(f"pipeline {i + 1} must be an object")
    unknown = sorted(set(p) - {"name", "streams", "stages"})
    if unknown:
        raise BadInput(f"pipeline {i + 1}: unknown field(s): {', '.join(unknown)[:60]}")
    name = p.get("name", f"pipeline{i + 1}" if i else "pipeline")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(f"pipeline {i + 1}: name must be 1-40 letters, digits, '_', '.', '-'")
    streams = p.get("streams", 1)
    if not (_int(streams) and 1 <= streams <= MAX_STREAMS):
        raise BadInput(f"pipeline {name}: streams must be an integer in [1, {MAX_STREAMS}]")
    stages = p.get("stages")
    if not isinstance(stages, list) or not 1 <= len(stages) <= MAX_STAGES:
        raise BadInput(f"pipeline {name}: needs 1 to {MAX_STAGES} stages")
    checked, seen = [], set()
    have = IMAGE
    for j, st in enumerate(stages):
        s = _check_stage(st, name, j)
        where = f"pipeline {name} stage {j + 1} ({s['name']})"
        if s["name"] in seen:
            raise BadInput(f"{where}: two stages are named {s['name']!r}; give each a name")
        seen.add(s["name"])
        takes, gives = FLOW[s["stage"]]
        if have != ANY and have not in takes:
            raise BadInput(
                f"{where}: {s['stage']} needs {_needs(s['stage'])} before it, but it gets {_what(have)}"
            )
        have = gives
        checked.append(s)
    return {"name": name, "streams": streams, "stages": checked}


def _needs(kind: str) -> str:
    takes = FLOW[kind][0]
    if kind == "crop":
        return "a boxes stage (db_post or yolo)"
    if takes == (OUTPUTS,):
        return "a model stage"
    if takes == (TENSOR,):
        return "a normalize stage"
    return " or ".join(_what(t) for t in takes)


def _what(kind: str) -> str:
    return {
        IMAGE: "images (frames or crops)",
        TENSOR: "a normalized tensor",
        OUTPUTS: "a model's outputs",
        BOXES: "boxes",
        LABELS: "top-k labels",
        TEXTS: "decoded text",
    }[kind]


def _check_stage(st: Any, pname: str, j: int) -> dict[str, Any]:
    where = f"pipeline {pname} stage {j + 1}"
    if not isinstance(st, dict) or not isinstance(st.get("stage"), str):
        raise BadInput(f"{where}: expected an object with a 'stage' kind")
    kind = st["stage"]
    if kind not in FLOW:
        raise BadInput(f"{where}: unknown stage {kind[:40]!r}; expected one of {', '.join(FLOW)}")
    name = st.get("name", kind)
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(f"{where}: name must be 1-40 letters, digits, '_', '.', '-'")
    where = f"{where} ({name})"
    spec = OPTIONS[kind]
    unknown = sorted(set(st) - set(spec) - {"stage", "name"})
    if unknown:
        raise BadInput(
            f"{where}: unknown option(s) {', '.join(unknown)[:60]}; {kind} takes {', '.join(spec)}"
        )
    out: dict[str, Any] = {"stage": kind, "name": name}
    for opt, (ok, default, what) in spec.items():
        if opt not in st or st[opt] is None:
            if default is _REQ:
                raise BadInput(f"{where}: {kind} needs {opt} ({what})")
            out[opt] = default
            continue
        if not ok(st[opt]):
            raise BadInput(f"{where}: {opt} must be {what}")
        out[opt] = st[opt]
    return out


def artifacts(pipeline: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, sha256) of every artifact the pipeline's stages name."""
    out = []
    for p in pipeline["pipelines"]:
        for s in p["stages"]:
            for key in ("model_sha256", "characters_sha256", "code_sha256"):
                if s.get(key):
                    out.append((f"{p['name']} stage {s['name']}", s[key]))
    return out


def has_code(pipeline: dict[str, Any]) -> list[str]:
    """Names of the user (code) stages: they run only on an agent started with --allow-code."""
    return [
        f"{p['name']}/{s['name']}" for p in pipeline["pipelines"] for s in p["stages"] if s["stage"] == "code"
    ]
