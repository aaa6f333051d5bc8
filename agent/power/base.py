"""The Meter protocol and the registry of meter kinds.

A meter turns bytes from a serial port into blocks of samples on the meter's
own clock. Capture (capture.py) owns the thread, the file and the clock fit;
a meter only parses. One kind per module, loaded by name so the agent imports
only the meter it uses.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agent import rundir
from agent.errors import BadInput
from agent.names import METERS
from agent.spec import MeterSpec

log = logging.getLogger("edgebench.power")

# kind -> (module, class): the one list, in agent/names.py (the spec checks kinds against it)
REGISTRY = METERS

# The one on-disk sample layout (power.bin): 16 bytes a sample.
SAMPLE_DTYPE = np.dtype(list(rundir.SAMPLE_FIELDS))


@dataclass
class Block:
    """Samples parsed from one read. ``t_dev_ns`` is the meter's clock
    (unwrapped), or the host clock for meters without one (``host_clock``)."""

    t_dev_ns: np.ndarray  # int64
    current_a: np.ndarray  # float32
    bus_v: np.ndarray | None = None  # float32, None when the meter has no bus voltage
    dropped: int = 0  # samples known lost (counter/timestamp gaps) inside or before this block
    garbage: int = 0  # unparseable lines / bytes skipped
    t_rx_ns: int | None = None  # when the read returned, before decoding (the clock pair's host time)

    def __len__(self) -> int:
        return int(self.t_dev_ns.shape[0])

    def to_records(self) -> np.ndarray:
        rec = np.empty(len(self), dtype=SAMPLE_DTYPE)
        rec["t_dev_ns"] = self.t_dev_ns
        rec["current_a"] = self.current_a
        rec["bus_v"] = np.nan if self.bus_v is None else self.bus_v
        return rec


def empty_block() -> Block:
    return Block(np.empty(0, np.int64), np.empty(0, np.float32))


class MeterGone(Exception):
    """The meter stopped answering or its port vanished (unplugged)."""


class Meter(Protocol):
    kind: str
    host_clock: bool  # True: t_dev_ns is already host monotonic time (polled meters)
    nominal_rate_hz: float | None

    def open(self) -> None:
        """Open the port and handshake. BadInput when the port or meter is wrong."""

    def start(self) -> None:
        """Start streaming / arm the meter."""

    def read(self) -> Block:
        """Block up to ~50 ms; return what arrived (maybe empty). MeterGone when unplugged."""

    def flush(self) -> Block:
        """Samples the meter still holds back (at stop, after the last read)."""

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def info(self) -> dict[str, Any]:
        """Identity and settings for power.json (IDN string, calibration...)."""

    def sample_gaps(self) -> list[dict[str, Any]]:
        """Each run of samples known lost so far, on the meter's clock:
        {t_dev_ns (the first missing sample), samples, uncertainty (samples
        either side; None: unbounded), estimated (sized from host timing)}.
        Their ``samples`` add up to the blocks' ``dropped``."""


@dataclass
class Options:
    """Typed access to ``--meter-opt K=V`` with one-line BadInput errors."""

    kind: str
    raw: dict[str, str]
    used: set[str] = field(default_factory=set)

    def get(self, key: str, default: str | None = None) -> str | None:
        self.used.add(key)
        return self.raw.get(key, default)

    def number(self, key: str, default: float, lo: float | None = None, hi: float | None = None) -> float:
        self.used.add(key)
        if key not in self.raw:
            return default
        try:
            v = float(self.raw[key])
        except ValueError:
            raise BadInput(f"meter option {key}={self.raw[key]!r}: not a number") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise BadInput(f"meter option {key}={self.raw[key]!r}: out of range [{lo}, {hi}]")
        return v

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        v = self.get(key, default) or default
        if v not in choices:
            raise BadInput(f"meter option {key}={v!r}: expected one of {', '.join(choices)}")
        return v

    def check_unused(self) -> None:
        extra = sorted(set(self.raw) - self.used)
        if extra:
            raise BadInput(f"unknown option(s) for meter {self.kind}: {', '.join(extra)}")


def open_meter(spec: MeterSpec) -> Meter:
    """Build, open and handshake the meter named by ``spec``."""
    meter = make_meter(spec)
    meter.open()
    return meter


def make_meter(spec: MeterSpec) -> Meter:
    """Build without opening: validates the options (BadInput)."""
    if spec.kind not in REGISTRY:
        raise BadInput(f"unknown meter kind {spec.kind!r}; expected one of {', '.join(REGISTRY)}")
    if not spec.port:
        raise BadInput(f"meter {spec.kind}: empty port")
    mod_name, cls_name = REGISTRY[spec.kind]
    cls = getattr(importlib.import_module(mod_name), cls_name)
    opts = Options(spec.kind, dict(spec.options or {}))
    meter = cls(spec.port, opts)
    opts.check_unused()
    return meter


def open_port(url: str, baudrate: int, timeout: float = 0.05) -> Any:
    """pyserial's serial_for_url (device paths, rfc2217://, socket://), as BadInput on failure."""
    import serial  # pyserial: light, but only needed when a meter is used

    # pyserial's rfc2217:// client refuses any write_timeout (NotImplementedError
    # from its open()); its writes are socket sends, bounded by TCP instead.
    kw = {} if url.lower().startswith("rfc2217://") else {"write_timeout": 1.0}
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, **kw)
    except (serial.SerialException, ValueError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput(f"cannot open meter port {url!r}: {msg}") from None


def close_port(ser: Any) -> None:
    """Close a port that may already be gone (an unplugged tty can fail to
    close; there is nothing left to save)."""
    if ser is None:
        return
    try:
        ser.close()
    except Exception:
        pass


class SerialMeter:
    """What the serial meters share: a pyserial port in ``_ser``, closed once
    and forgotten, and no stop command unless the meter has one (a streamer
    that sends on its own, or a meter polled per read, has nothing to stop);
    no lost samples unless the meter can tell."""

    _ser: Any = None

    def sample_gaps(self) -> list[dict[str, Any]]:
        return []

    def stop(self) -> None:
        return None

    def close(self) -> None:
        close_port(self._ser)
        self._ser = None


def purge_input(ser: Any) -> str | None:
    """Drop what the port queued before the run: best effort. None, or why not.

    Over RFC 2217 the purge is a round trip: pyserial's client waits up to its
    network timeout (3 s; ``?timeout=`` in the URL) for the server's answer and
    raises if none comes: a slow or overloaded ser2net, or a server that just
    dropped the link. None of that is a reason to fail the run: stale samples
    only precede the run (analysis keeps the run's window), and a port that is
    really gone fails the capture's first read, which records the gap and
    reconnects as for any unplug.

    pyserial clears its own receive queue only after the answer: without one,
    drop what has arrived so far here. Else the bytes from before the server's
    flush run straight into those after it, and the spliced line can carry a
    timestamp that the parser takes for a real jump."""
    try:
        ser.reset_input_buffer()
    except OSError as exc:  # SerialException (PortNotOpenError, purge timeout) or a socket error
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("meter port %s: could not purge input (%s); continuing", getattr(ser, "port", "?"), why)
        try:
            n = ser.in_waiting  # rfc2217://: the exact count in pyserial's queue
            if n:
                ser.read(n)
        except OSError:
            pass  # gone: the capture's first read reports it
        return why
    return None


READ_CHUNK = 1 << 16


def read_available(ser: Any) -> bytes:
    """What is waiting on the port; else what arrives within the port timeout.
    socket:// and rfc2217:// report in_waiting as 0/1, not a count, so the
    bulk read is the timed one. pyserial reports an unplugged tty or a closed
    socket as SerialException/OSError: MeterGone."""
    import serial

    try:
        n = ser.in_waiting
        return ser.read(n if n > 1 else READ_CHUNK)
    except (serial.SerialException, OSError) as exc:
        raise MeterGone(str(exc).splitlines()[0] if str(exc) else "port closed") from None
