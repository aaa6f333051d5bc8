"""The PPK2's data, apart from the serial port: the metadata text
(calibration) and the 100 kS/s sample stream. Each sample is a little-endian
uint32: ADC value bits 0-13, measurement range bits 14-16, a 6-bit counter
bits 18-23, the 8 digital channels bits 24-31. The counter steps by one per
sample, so a jump is samples lost on the link (modulo 64: ``Ppk2Decoder``
finds longer runs from the host clock, resyncs after a stray byte and keeps
a few out-of-order counters). ``ppk2.py`` is the meter that feeds it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.power.base import Block
from agent.power.ppk2_runs import MIN_BLOCKS_SILENT, WRAP, LagFloor, Sizing, size_runs

ADC_MULT = 1.8 / 163840  # volts per ADC step (the ADC value is scaled by 4 first)
N_RANGES = 5
COUNTER_MASK = 0x3F
SAMPLE_PERIOD_NS = 10_000  # 100 kS/s
# Uncalibrated defaults (nominal shunt resistors per range), used for keys the
# metadata lacks.
DEFAULT_CAL: dict[str, list[float]] = {
    "R": [1031.64, 101.65, 10.15, 0.94, 0.043],
    "GS": [1.0] * 5,
    "GI": [1.0] * 5,
    "O": [0.0] * 5,
    "S": [0.0] * 5,
    "I": [0.0] * 5,
    "UG": [1.0] * 5,
}


def parse_metadata(text: str) -> dict[str, Any]:
    """``key: value`` lines up to ``END`` -> {"cal": {R: [5], ...}, "calibrated", "hw", "ia", ...}."""
    cal = {k: list(v) for k, v in DEFAULT_CAL.items()}
    meta: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, val = line.partition(":")
        key = key.strip()
        val = val.strip()
        if key == "END":
            break
        if not sep:
            continue
        base, digit = key[:-1], key[-1:]
        if base in cal and digit.isdigit() and int(digit) < N_RANGES:
            try:
                f = float(val)
            except ValueError:
                continue
            if base == "R" and f == 0.0:  # some units ship a zero resistor: keep the nominal
                continue
            cal[base][int(digit)] = f
        else:
            meta[key.lower()] = val
    meta["cal"] = cal
    return meta


def logic_bits(words: np.ndarray) -> np.ndarray:
    """The 8 digital channels (D0-D7) of each sample."""
    return ((words >> 24) & 0xFF).astype(np.uint8)


def decode(words: np.ndarray, cal: dict[str, list[float]], vdd_v: float) -> tuple[np.ndarray, np.ndarray]:
    """uint32 samples -> (current in A, counter). The per-range calibration:
    x = (4*adc - O) * ADC_MULT / R;  I = UG * (x * (GS*x + GI) + S*vdd + Iofs)."""
    adc = (words & 0x3FFF).astype(np.float64) * 4.0
    rng = np.minimum((words >> 14) & 0x7, N_RANGES - 1).astype(np.intp)
    counter = ((words >> 18) & COUNTER_MASK).astype(np.int64)
    c = {k: np.asarray(v, dtype=np.float64)[rng] for k, v in cal.items()}
    x = (adc - c["O"]) * (ADC_MULT / c["R"])
    amps = c["UG"] * (x * (c["GS"] * x + c["GI"]) + (c["S"] * vdd_v + c["I"]))
    return amps.astype(np.float32), counter


# Sample loss. The 6-bit counter names a lost run only modulo 64: 64 lost
# samples look like none, 65 like one. Nordic's nRF Connect Power Profiler
# (pc-nrfconnect-ppk, serialDevice) reads the counter the same way and also
# lets up to 4 samples carry an unexpected counter before it calls it loss.
# Runs of 64 are sized from the host clock by ppk2_runs.py: never from one
# read's arrival time, always with the bound the host's current jitter allows.
TOLERATE = 4  # samples with an unexpected counter before it counts as loss
RUN = 3  # counter steps of one that confirm a resumed sequence or an alignment
HALF_WRAP = 32  # samples: a lag beyond this, unexplained by the counter, may be a lost run of 64
CONFIRM_NS = 300_000_000  # a held read is settled by the lowest lags over this long...
CONFIRM_READS = 12  # ...and at least this many reads (pyserial reads come ~20 a second)
HOLD_MAX_NS = 500_000_000  # while the timing fits several counts, hold up to this long
# a lag above HALF_WRAP on every read this long (a host is slow for a while,
# a lost run raises the lag for good): a run of 64 with no counter trace?
CREEP_NS = 1_000_000_000
CREEP_READS = 48
CREEP_FLUSH_NS = 600_000_000  # at stop no later read can show the lag going back: this much is enough
CREEP_MAX_NS = 2_000_000_000  # a loaded host's lowest lag settles over longer windows: hold up to this


def _steps_by_one(counter: np.ndarray) -> bool:
    return bool(np.all(((counter[1:] - counter[:-1]) & COUNTER_MASK) == 1))


class Ppk2Decoder:
    """Byte stream -> samples with gap-aware sample indices (the PPK2's clock).

    ``feed(data, t_rx_ns)``: ``t_rx_ns`` is the host time the bytes arrived;
    without it only the counter finds lost samples. A read that shows a lost
    run (a counter jump, or a lag far beyond jitter) is held until later
    reads settle how many runs of 64 it hides: its samples come out a little
    later, with the right indices. Each gap is listed in ``gaps``: where
    (``index``, the first sample missing), the counter's residue
    (``counter``), ``samples``, ``uncertainty`` (samples either side; None
    while only the counter knows it, modulo 64) and ``estimated`` (the size
    rests on host timing)."""

    def __init__(self, cal: dict[str, list[float]], vdd_v: float, period_ns: int = SAMPLE_PERIOD_NS) -> None:
        self.cal = cal
        self.vdd_v = vdd_v
        self.period_ns = period_ns
        self._buf = b""
        self._expect: int | None = None  # the counter the next sample should carry; None: not aligned
        self._relock_from: int | None = None  # the expected counter when alignment was lost
        self._next_index = 0
        self.samples = 0
        self.dropped = 0
        self._dropped_out = 0  # of `dropped`, how much went out with blocks
        self.garbage = 0  # bytes skipped to find the 4-byte alignment again
        self._garbage_out = 0
        self.resyncs = 0
        self.out_of_order = 0  # samples kept in place despite an unexpected counter
        self.wrap_runs = 0  # lost runs of 64 found from the host clock
        self.logic_seen = 0  # OR of the digital channels: which ones ever went high
        self.logic_edges = 0  # channel changes between consecutive samples
        self._last_logic: int | None = None
        self.floor = LagFloor()
        self.gaps: list[dict[str, Any]] = []
        self._held: list[tuple[np.ndarray, np.ndarray]] = []
        self._hold: dict[str, Any] | None = None

    # -- bytes -> aligned words ----------------------------------------------
    def _walk(self, final: bool = False) -> tuple[np.ndarray, np.ndarray, int | None]:
        """Decode the aligned words in the buffer: (words, indices, output
        position of the first counter gap or None). Keeps what cannot be
        settled yet (a tail too short to tell loss from a stray counter),
        unless ``final``: then an odd counter there counts as loss."""
        buf = self._buf
        pos = 0
        words: list[np.ndarray] = []
        index: list[np.ndarray] = []
        first_gap: int | None = None
        n_out = 0

        def take(w: np.ndarray) -> None:
            nonlocal n_out
            index.append(self._next_index + np.arange(w.shape[0], dtype=np.int64))
            words.append(w)
            self._next_index += w.shape[0]
            n_out += w.shape[0]

        def lost(n: int) -> None:
            nonlocal first_gap
            if n:
                self.gaps.append(
                    {
                        "index": self._next_index,
                        "counter": n,
                        "samples": n,
                        "uncertainty": None,
                        "estimated": False,
                    }
                )
                self._next_index += n
                self.dropped += n
                if first_gap is None:
                    first_gap = n_out

        while True:
            n = (len(buf) - pos) // 4
            if n == 0:
                break
            w = np.frombuffer(buf, dtype="<u4", count=n, offset=pos)
            c = ((w >> 18) & COUNTER_MASK).astype(np.int64)
            if self._expect is None:
                # not aligned (start, or after a stray byte): the first byte
                # offset whose counters step by one
                if n < RUN + 1:
                    break
                if not _steps_by_one(c[: RUN + 1]):
                    pos += 1
                    self.garbage += 1
                    continue
                if self._relock_from is not None:
                    lost((int(c[0]) - self._relock_from) & COUNTER_MASK)
                    self._relock_from = None
                self._expect = int(c[0])
            bad = np.flatnonzero(c != (self._expect + np.arange(n)) & COUNTER_MASK)
            k = int(bad[0]) if bad.shape[0] else n
            if k:
                take(w[:k])
                self._expect = (self._expect + k) & COUNTER_MASK
                pos += 4 * k
            if k == n:
                break
            need = TOLERATE + RUN + 1
            exp = self._expect
            if n - k < need:
                if not final:
                    break  # not enough after the odd counter to tell what it is
                lost((int(c[k]) - exp) & COUNTER_MASK)
                self._expect = int(c[k])
                continue
            cc = c[k : k + need]
            # a few samples with unexpected counters, then the sequence resumes
            # where it would have: counter errors, not loss (as Nordic's app)
            resume = next(
                (
                    j
                    for j in range(1, TOLERATE + 1)
                    if all(cc[j + r] == (exp + j + r) & COUNTER_MASK for r in range(RUN))
                ),
                None,
            )
            if resume is not None:
                take(w[k : k + resume])
                self.out_of_order += resume
                self._expect = (exp + resume) & COUNTER_MASK
                pos += 4 * resume
                continue
            if _steps_by_one(cc[: RUN + 1]):  # a new sequence: samples were lost
                lost((int(cc[0]) - exp) & COUNTER_MASK)
                self._expect = int(cc[0])
                continue
            # neither: the words are misaligned (a byte too many or too few)
            self.resyncs += 1
            self._relock_from = exp
            self._expect = None
        self._buf = buf[pos:]
        if not words:
            return np.empty(0, np.uint32), np.empty(0, np.int64), first_gap
        return np.concatenate(words), np.concatenate(index), first_gap

    # -- host clock check ------------------------------------------------------
    def _timed(
        self, idx: np.ndarray, words: np.ndarray, gap_at: int | None, new_gap: int | None, t_rx: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Apply the host-clock check to one read; what may go out now.
        ``new_gap``: the entry in ``gaps`` of this read's first counter gap.

        A read with a counter gap is held until the lags after it size the
        runs of 64 it hides. A late read with no counter trace is held too:
        once a read is back near the floor it was the host, and the held
        reads go out as they came; a lag that stays up a run of 64 above the
        floor, flat, for CREEP_NS is named a lost run, the held samples
        shifted to their true indices."""
        p = self.period_ns
        lag = t_rx - int(idx[-1]) * p
        base = self.floor.base()
        excess = 0 if base is None else lag - base
        hold = self._hold
        out = (idx[:0], words[:0])
        if hold is not None and gap_at is not None and hold["gap"] is None:
            # a counter gap while late reads are held: they go out as they came
            out, hold = self._settle(Sizing(0, 0, False)), None
            base = self.floor.base()
            excess = 0 if base is None else lag - base
        if hold is None:
            if base is None or (gap_at is None and excess <= HALF_WRAP * p):
                self.floor.push(t_rx, lag)
                return _joined(out, (idx, words))
            self._start_hold(idx, words, gap_at, new_gap, t_rx, lag, excess)
            return out
        self._held.append((idx, words))
        hold["excess"].append(excess)
        hold["lags"].append((t_rx, lag))
        age, reads = t_rx - hold["t0"], len(hold["excess"])
        if hold["gap"] is None:
            if excess <= HALF_WRAP * p:
                return self._settle(Sizing(0, 0, False))  # back at the floor: the host was slow
            if age < CREEP_NS or reads < CREEP_READS:
                return out
            sz = size_runs(hold["excess"], self.floor.stray(age, MIN_BLOCKS_SILENT), p, False)
            if not sz.runs and age < CREEP_MAX_NS:
                return out  # a longer window's lowest lag strays less: wait for it
            return self._settle(sz)
        if age < CONFIRM_NS or reads < CONFIRM_READS:
            return out
        sz = size_runs(hold["excess"], self.floor.stray(age), p, True)
        if sz.ambiguous and age < HOLD_MAX_NS:
            return out  # more reads may pin it down
        return self._settle(sz)

    def _start_hold(
        self,
        idx: np.ndarray,
        words: np.ndarray,
        gap_at: int | None,
        gap: int | None,
        t_rx: int,
        lag: int,
        excess: int,
    ) -> None:
        self._hold = {"t0": t_rx, "excess": [excess], "at": gap_at or 0, "gap": gap, "lags": [(t_rx, lag)]}
        self._held = [(idx, words)]

    def _add_runs(self, runs: int) -> int:
        extra = WRAP * runs
        self._next_index += extra
        self.dropped += extra
        self.wrap_runs += runs
        return extra

    def _settle(self, sz: Sizing) -> tuple[np.ndarray, np.ndarray]:
        """Release the held reads, the runs of 64 the timing shows added at the gap."""
        hold = self._hold
        assert hold is not None
        idx = np.concatenate([i for i, _ in self._held])
        words = np.concatenate([w for _, w in self._held])
        first_missing = int(idx[hold["at"]]) if hold["gap"] is None else 0
        extra = self._add_runs(sz.runs)
        idx[hold["at"] :] += extra
        if hold["gap"] is not None:
            g = self.gaps[hold["gap"]]
            g["samples"] += extra
            g["estimated"] = bool(sz.runs or sz.ambiguous)
            if sz.uncertainty is not None:
                g["uncertainty"] = max(WRAP, sz.uncertainty) if g["estimated"] else 0
        elif extra:
            self.gaps.append(_timing_gap(first_missing, sz))
        self._held = []
        self._hold = None
        # the held reads' lags feed the floor too (a loaded host holds often)
        for t, lag in hold["lags"]:
            self.floor.push(t, lag - extra * self.period_ns)
        return idx, words

    def flush(self) -> Block:
        """What is still held back (at stop): held reads, sized by the reads
        that followed (too few: the counter's count stands, uncertainty
        unknown), and the undecided tail of the stream."""
        idx, words = np.empty(0, np.int64), np.empty(0, np.uint32)
        h = self._hold
        if h is not None:
            age = h["lags"][-1][0] - h["t0"]
            if h["gap"] is not None:
                sz = size_runs(h["excess"], self.floor.stray(age), self.period_ns, True)
            elif age >= CREEP_FLUSH_NS and len(h["excess"]) >= CREEP_READS:
                sz = size_runs(h["excess"], self.floor.stray(age, MIN_BLOCKS_SILENT), self.period_ns, False)
            else:
                sz = Sizing(0, 0, False)  # too short to tell a lost run from a slow host
            idx, words = self._settle(sz)
        tail_words, tail_idx, _ = self._walk(final=True)
        return self._emit(np.concatenate([idx, tail_idx]), np.concatenate([words, tail_words]))

    def feed(self, data: bytes, t_rx_ns: int | None = None) -> Block:
        self._buf += data
        n_gaps = len(self.gaps)
        words, idx, gap_at = self._walk()
        if t_rx_ns is not None and idx.shape[0]:
            idx, words = self._timed(idx, words, gap_at, n_gaps if gap_at is not None else None, t_rx_ns)
        return self._emit(idx, words)

    def _emit(self, idx: np.ndarray, words: np.ndarray) -> Block:
        n = int(idx.shape[0])
        dropped = self.dropped - self._dropped_out if n else 0
        garbage = self.garbage - self._garbage_out
        self._dropped_out += dropped
        self._garbage_out = self.garbage
        if n == 0:
            return Block(np.empty(0, np.int64), np.empty(0, np.float32), garbage=garbage)
        amps, _ = decode(words, self.cal, self.vdd_v)
        logic = logic_bits(words)
        self.logic_seen |= int(np.bitwise_or.reduce(logic))
        edges = int(np.count_nonzero(np.diff(logic)))
        if self._last_logic is not None and int(logic[0]) != self._last_logic:
            edges += 1
        self.logic_edges += edges
        self._last_logic = int(logic[-1])
        self.samples += n
        return Block(t_dev_ns=idx * self.period_ns, current_a=amps, dropped=dropped, garbage=garbage)


def _joined(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])) if a[0].shape[0] else b


def _timing_gap(index: int, sz: Sizing) -> dict[str, Any]:
    """A gap with no counter trace: runs of 64 the host clock shows."""
    return {
        "index": index,
        "counter": 0,
        "samples": WRAP * sz.runs,
        "uncertainty": sz.uncertainty,
        "estimated": True,
    }
