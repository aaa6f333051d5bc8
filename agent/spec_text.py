"""The command-line text forms of run spec values: ``--input-shape
NAME=1x3x224x224``, durations (``30m``, ``1h30m``), ``--burst 2s/8s`` and
``--meter KIND:PORT`` with its ``--meter-opt K=V``. Used by the controller's
run options and the agent's own command line; the spec itself
(``agent/spec.py``) holds only parsed values.
"""

from __future__ import annotations

import re

from agent.errors import BadInput
from agent.names import METER_KINDS
from agent.spec import MeterSpec


def parse_shape(text: str) -> tuple[str, list[int]]:
    """``NAME=1x3x224x224`` -> (NAME, [1, 3, 224, 224]); the --input-shape syntax."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name:
        raise BadInput(f"bad input shape {text!r}: expected NAME=1x3x224x224")
    try:
        shape = [int(d) for d in dims.lower().replace(",", "x").split("x")]
    except ValueError:
        raise BadInput(f"bad input shape {text!r}: dimensions must be integers") from None
    if not shape or any(d <= 0 for d in shape):
        raise BadInput(f"bad input shape {text!r}: dimensions must be positive")
    return name, shape


def parse_duration(text: str | float | int) -> float:
    """``30m``, ``10s``, ``1h30m``, ``250ms`` or plain seconds -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    s = text.strip().lower()
    try:
        return float(s)
    except ValueError:
        pass
    total = 0.0
    pos = 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|h|m|s)", s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise BadInput(f"bad duration {text!r}: use e.g. 30m, 10s, 1h30m or seconds")
    return total


def parse_burst(text: str) -> tuple[float | None, int | None, float]:
    """``--burst ON/OFF``: ``2s/8s`` -> (2.0, None, 8.0); ``30x/5s`` -> (None, 30, 5.0)."""
    on, sep, off = text.partition("/")
    if not sep:
        raise BadInput(f"bad --burst {text!r}: expected ON/OFF, e.g. 2s/8s or 30x/5s")
    off_s = parse_duration(off)
    on = on.strip().lower()
    if on.endswith("x"):
        try:
            n = int(on[:-1])
        except ValueError:
            raise BadInput(f"bad --burst {text!r}: {on!r} is not a count like 30x") from None
        return None, n, off_s
    return parse_duration(on), None, off_s


def parse_meter(text: str, opts: list[str] | dict[str, str] | None = None) -> MeterSpec:
    """``--meter KIND:PORT`` plus ``--meter-opt K=V``... -> MeterSpec; PORT may
    hold colons itself (``socket://host:port``)."""
    kind, sep, port = text.partition(":")
    if not sep or not kind or not port:
        raise BadInput(f"bad --meter {text!r}: expected KIND:PORT, e.g. ppk2:/dev/ttyACM0")
    if kind not in METER_KINDS:
        raise BadInput(f"unknown meter kind {kind!r}; expected one of {', '.join(METER_KINDS)}")
    if isinstance(opts, dict):
        return MeterSpec(kind=kind, port=port, options={str(k): str(v) for k, v in opts.items()})
    options: dict[str, str] = {}
    for o in opts or []:
        k, eq, v = o.partition("=")
        if not eq or not k.strip():
            raise BadInput(f"bad --meter-opt {o!r}: expected K=V")
        options[k.strip()] = v.strip()
    return MeterSpec(kind=kind, port=port, options=options)
