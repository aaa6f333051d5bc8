"""PPK2 sample loss the 6-bit counter cannot name alone: runs of 64 and more
samples (found from the host clock), a stray byte (resync), and a few
out-of-order counters (tolerated, as Nordic's own app does)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from emulators.fixtures import emulators_fixture  # noqa: F401  (the `emulators` fixture)
from emulators.ppk2 import Ppk2Emulator, encode_words, metadata_text
from emulators.waveform import Spike, Waveform

from agent.power.capture import Capture
from agent.power.ppk2_stream import DEFAULT_CAL, Ppk2Decoder, parse_metadata
from agent.power.trace import load_trace
from agent.spec import MeterSpec

pytestmark = pytest.mark.serial  # timing against the wall clock: run alone (Makefile)

P = 10_000  # ns per sample at 100 kS/s
GAPS = [63, 64, 65, 1_000, 100_000]


def decoder() -> Ppk2Decoder:
    return Ppk2Decoder(parse_metadata(metadata_text().decode())["cal"], 3.3)


def play(
    dec: Ppk2Decoder, idx: np.ndarray, seed: int = 1, per_read: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """Feed the samples with true indices ``idx`` as a PPK2 on USB would: in
    reads of ``per_read``, each received 0-1 ms after its newest sample was
    taken (on the host clock, sample i is taken at i * P). Returns the decoded
    (t_dev_ns, current) of everything, the held tail flushed."""
    rng = np.random.default_rng(seed)
    amps = 0.01 + (idx % 1000) * 1e-4  # a sawtooth: each sample's value names its index
    raw = encode_words(amps, idx, 3.3).astype("<u4").tobytes()
    t, a = [], []
    for k in range(0, idx.shape[0], per_read):
        last = int(idx[min(k + per_read, idx.shape[0]) - 1])
        blk = dec.feed(
            raw[4 * k : 4 * (k + per_read)], 5_000_000_000 + (last + 1) * P + int(rng.uniform(0, 1e6))
        )
        t.append(blk.t_dev_ns)
        a.append(blk.current_a)
    blk = dec.flush()
    t.append(blk.t_dev_ns)
    a.append(blk.current_a)
    return np.concatenate(t), np.concatenate(a)


@pytest.mark.parametrize("gap", GAPS)
def test_lost_runs_of_any_length_are_counted_and_keep_the_timebase(gap):
    before, after = 60_000, 80_000  # 0.6 s, then the gap, then 0.8 s
    idx = np.r_[0:before, before + gap : before + gap + after].astype(np.int64)
    dec = decoder()
    t, a = play(dec, idx)
    assert dec.dropped == gap
    assert t.shape[0] == idx.shape[0] == dec.samples
    # every sample after the gap sits at its true time; a run of 64 that leaves
    # no trace in the counter is found within 0.3 s, the samples before keep
    # the old count (off by 0.64 ms)
    settled = before + (30_000 if gap % 64 == 0 else 0)
    assert (t[settled:] == idx[settled:] * P).all()
    assert (t[:before] == idx[:before] * P).all()
    assert a == pytest.approx(0.01 + (idx % 1000) * 1e-4, rel=0.01)


def test_jitter_alone_counts_no_loss():
    idx = np.arange(200_000, dtype=np.int64)
    for seed in range(5):
        dec = decoder()
        t, _ = play(dec, idx, seed=seed)
        assert dec.dropped == 0 and (t == idx * P).all()


def test_without_a_host_clock_the_counter_still_counts_modulo_64():
    idx = np.r_[0:1000, 1065:3000].astype(np.int64)  # 65 lost: the counter says 1
    raw = encode_words(np.full(idx.shape[0], 0.1), idx, 3.3).astype("<u4").tobytes()
    dec = decoder()
    blk = dec.feed(raw)
    assert dec.dropped == 1 and len(blk) == idx.shape[0]


@pytest.mark.parametrize("at", [0, 1, 2, 3])
def test_a_stray_byte_is_skipped_and_every_later_sample_decodes(at):
    idx = np.arange(4000, dtype=np.int64)
    amps = 0.01 + (idx % 1000) * 1e-4
    raw = encode_words(amps, idx, 3.3).astype("<u4").tobytes()
    cut = 4 * 1500 + at  # inside sample 1500 when at > 0
    data = raw[:cut] + b"\xa5" + raw[cut:]
    dec = decoder()
    blocks = [dec.feed(data[i : i + 999]) for i in range(0, len(data), 999)]
    blocks.append(dec.flush())
    t = np.concatenate([b.t_dev_ns for b in blocks])
    got = np.concatenate([b.current_a for b in blocks])
    assert sum(b.garbage for b in blocks) == 1 and dec.resyncs == 1
    # nothing is lost and every sample keeps its time; only the one the byte
    # landed in may read a wrong low ADC byte
    assert dec.dropped == 0 and t.tolist() == (idx * P).tolist()
    others = np.arange(4000) != 1500
    assert got[others] == pytest.approx(amps[others], rel=0.01)


def test_a_lost_byte_is_a_lost_sample_not_a_misaligned_stream():
    idx = np.arange(3000, dtype=np.int64)
    raw = encode_words(np.full(3000, 0.05), idx, 3.3).astype("<u4").tobytes()
    data = raw[: 4 * 1000 + 3] + raw[4 * 1000 + 4 :]  # the logic byte of sample 1000 is gone
    dec = decoder()
    blk = dec.feed(data)
    assert dec.resyncs == 1 and dec.dropped + len(blk) == 3000 and dec.dropped <= 1
    assert blk.t_dev_ns[-1] == 2999 * P and blk.current_a == pytest.approx(0.05, rel=0.01)


def test_a_few_out_of_order_counters_are_kept_in_place_not_counted_as_loss():
    idx = np.arange(2000, dtype=np.int64)
    counter = idx.copy()
    counter[[500, 501]] = counter[[501, 500]]  # two samples swapped
    counter[900] = 17  # one corrupted counter
    counter[1300:1304] = 5  # four in a row: still tolerated (Nordic's app tolerates 4)
    raw = encode_words(np.full(2000, 0.05), counter, 3.3).astype("<u4").tobytes()
    dec = decoder()
    blk = dec.feed(raw)
    assert dec.dropped == 0 and dec.out_of_order == 2 + 1 + 4
    assert blk.t_dev_ns.tolist() == (idx * P).tolist()


def test_a_longer_run_of_wrong_counters_is_loss():
    idx = np.r_[0:700, 710:2000].astype(np.int64)  # 10 lost
    raw = encode_words(np.full(idx.shape[0], 0.05), idx, 3.3).astype("<u4").tobytes()
    dec = decoder()
    blk = dec.feed(raw)
    assert dec.dropped == 10 and dec.out_of_order == 0
    assert blk.t_dev_ns.tolist() == (idx * P).tolist()


# A reference stream written by hand from the PPK2's 32-bit sample word, not by
# the emulator's encoder. Bit layout, as NordicSemiconductor/pc-nrfconnect-ppk
# (src/device/serialDevice.ts: MEAS_ADC = generateMask(14, 0), MEAS_RANGE =
# generateMask(3, 14), MEAS_COUNTER = generateMask(6, 18), MEAS_LOGIC =
# generateMask(8, 24)) and IRNAS/ppk2-api-python (src/ppk2_api/ppk2_api.py: the
# same ADC/range/logic masks, the ADC value times 4, adc_mult = 1.8 / 163840)
# read it, little-endian:
#   adc   bits 0-13   range bits 14-16   (bit 17 unused)   counter bits 18-23   logic bits 24-31
REFERENCE = bytes(
    [
        # adc 1000 = 0x3E8, range 0, counter 0, logic 0x00
        #   0x000003E8 -> E8 03 00 00
        0xE8, 0x03, 0x00, 0x00,
        # adc 1000, range 2 (0x8000), counter 1 (0x40000), logic 0x01 (0x1000000)
        #   0x010483E8 -> E8 83 04 01
        0xE8, 0x83, 0x04, 0x01,
        # adc 16383 = 0x3FFF, range 4 (0x10000), counter 2 (0x80000), logic 0x00
        #   0x00093FFF -> FF 3F 09 00
        0xFF, 0x3F, 0x09, 0x00,
        # adc 8192 = 0x2000, range 1 (0x4000), counter 3 (0xC0000), logic 0x00
        #   0x000C6000 -> 00 60 0C 00
        0x00, 0x60, 0x0C, 0x00,
        # adc 0, range 1 (0x4000), counter 63 (0xFC0000), logic 0xFF (0xFF000000)
        #   0xFFFC4000 -> 00 40 FC FF
        0x00, 0x40, 0xFC, 0xFF,
        # adc 2, range 3 (0xC000), counter 0 (wrapped), logic 0x80 (0x80000000)
        #   0x8000C002 -> 02 C0 00 80
        0x02, 0xC0, 0x00, 0x80,
    ]
)  # fmt: skip


def test_hand_written_reference_stream_decodes_to_the_protocols_values():
    # the nominal table (GS 1, GI 1, O, S, I 0, UG 1) in the calibration both
    # sources apply: x = (4 * adc - O) * adc_mult / R[range]; I = UG * (x * (GS * x + GI) + S * vdd + I)
    r = DEFAULT_CAL["R"]

    def amps(adc: int, rng: int) -> float:
        x = 4 * adc * (1.8 / 163840) / r[rng]
        return x * (x + 1)

    expect = [amps(1000, 0), amps(1000, 2), amps(16383, 4), amps(8192, 1), 0.0, amps(2, 3)]
    dec = Ppk2Decoder(DEFAULT_CAL, 3.3)
    # counters 0, 1, 2, 3, then 63 (59 samples lost), then 0 (63 -> 0 wraps: one step)
    a, b = dec.feed(REFERENCE), dec.flush()  # the stream ends: its tail is settled by the counter
    t = np.concatenate([a.t_dev_ns, b.t_dev_ns])
    got = np.concatenate([a.current_a, b.current_a]).tolist()
    assert dec.dropped == 59
    assert t.tolist() == [0, P, 2 * P, 3 * P, 63 * P, 64 * P]
    assert got == pytest.approx(expect, rel=1e-5)
    assert dec.logic_seen == 0xFF


@pytest.mark.parametrize("gap", GAPS)
def test_emulated_ppk2_losing_a_run_of_samples(emulators, tmp_path, gap):
    gap_s = gap / 100_000
    # after the gap (a run of 64 with no counter trace is found ~1.6 s on, 32 reads):
    # the spike's time shows the timebase held
    spike_t = 1.0 + gap_s + (1.9 if gap % 64 == 0 else 0.5)
    wf = Waveform(baseline_a=0.05, noise_a=0.0005, spikes=[Spike(spike_t, 0.3, 0.003)])
    # the gap 1 s in: the lowest lag is known by then (the first reads only settle it)
    emu = emulators(Ppk2Emulator, wf, skips=[(1.0, gap)])
    cap = Capture(MeterSpec("ppk2", emu.port, {"vdd_mv": "3300"}), tmp_path)
    cap.start()
    time.sleep(spike_t + 0.4)  # the capture runs in real time: this span is the run
    s = cap.stop()
    assert emu.skipped == gap
    assert s["clock_fit"]["residual_us"] < 1000
    if gap % 64 == 0 and not s["sample_gaps"]:
        # no counter trace, and this host's lowest lag strayed too far to pin a
        # run of 64 (the emulator shares the GIL with the capture: hundreds of
        # us at times): not named, and never named wrong. The exact sizing on
        # steady lags: test_lost_runs_of_any_length_are_counted_and_keep_the_timebase
        assert s["dropped_samples"] == 0
        meter = json.loads((tmp_path / "power.json").read_text())["meter"]
        assert meter["lag_stray_us"] > 50
    else:
        # one run, labelled: a size that needed the host clock (any run of 64)
        # is an estimate, good to the uncertainty it states (one run of 64 at
        # least, more when the host is busy); 63 is the counter's alone
        [g] = s["sample_gaps"]
        assert s["dropped_samples"] == g["samples"]
        assert g["counter"] == gap % 64 and g["samples"] % 64 == gap % 64
        assert g["estimated"] is (gap >= 64)
        assert g["uncertainty"] >= 64 if gap >= 64 else g["uncertainty"] == 0
        assert abs(g["samples"] - gap) <= g["uncertainty"]
    # the timebase held, to within what the size says it may be off by
    off_s = (s["sample_gaps"][0]["uncertainty"] if s["sample_gaps"] else 64) / 100_000
    _, t, cur, _ = load_trace(tmp_path)
    rise = t[np.flatnonzero(cur > 0.2)[0]]
    assert (rise - emu.t0_ns) / 1e9 == pytest.approx(spike_t, abs=off_s + 0.0009)


def test_emulated_ppk2_with_a_stray_byte(emulators, tmp_path):
    wf = Waveform(baseline_a=0.05, noise_a=0.0005, spikes=[Spike(0.7, 0.3, 0.003)])
    emu = emulators(Ppk2Emulator, wf, garbage=[(0.4, b"\x5a")])
    cap = Capture(MeterSpec("ppk2", emu.port, {"vdd_mv": "3300"}), tmp_path)
    cap.start()
    time.sleep(1.0)  # the capture runs in real time: this span is the run
    s = cap.stop()
    assert s["garbage"] == 1 and s["dropped_samples"] == 0
    _, t, cur, _ = load_trace(tmp_path)
    assert cur.max() == pytest.approx(0.35, rel=0.02) and cur.min() > 0.04  # no misaligned nonsense
    rise = t[np.flatnonzero(cur > 0.2)[0]]
    assert (rise - emu.t0_ns) / 1e9 == pytest.approx(0.7, abs=0.0015)
