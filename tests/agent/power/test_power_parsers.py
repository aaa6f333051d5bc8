"""Meter parsers, calibration, clock fit and analysis maths without a port."""

from __future__ import annotations

import numpy as np
import pytest
from emulators.ppk2 import CAL, encode_words, metadata_text

from agent.errors import BadInput
from agent.power import clockfit
from agent.power.analysis import (
    cross_check,
    find_transients,
    integrate,
    robust_threshold,
    span_mask,
)
from agent.power.base import make_meter
from agent.power.ina_csv import WRAP, InaCsvParser
from agent.power.ppk2_stream import DEFAULT_CAL, Ppk2Decoder, decode, parse_metadata
from agent.rundir import load_iterations, load_telemetry, measured_span_ns
from agent.spec import MeterSpec
from agent.spec_text import parse_meter


def synced_parser(**kw) -> InaCsvParser:
    """A parser past the cut line every port open starts with (it drops up to
    the first newline), as after the meter's first read."""
    p = InaCsvParser(**kw)
    p.feed(b"\n")
    return p


def lines(*rows: str) -> bytes:
    return "".join(r + "\n" for r in rows).encode()


def test_ina_csv_unwraps_the_32bit_counter_across_reads():
    p = synced_parser()
    a = p.feed(
        lines("# streamer v1", "t_us,current_mA,bus_mV", f"{WRAP - 1000},100.0,5000")
        + f"{WRAP - 500},2".encode()
    )
    # the second line is split across two reads
    b = p.feed(b"00.0,5000\n0,300.0,5000\n500,4")
    c = p.feed(b"00.0,5000\n")
    t = np.concatenate([a.t_dev_ns, b.t_dev_ns, c.t_dev_ns]) // 1000
    assert t.tolist() == [WRAP - 1000, WRAP - 500, WRAP, WRAP + 500]
    assert np.concatenate([a.current_a, b.current_a, c.current_a]).tolist() == pytest.approx(
        [0.1, 0.2, 0.3, 0.4]
    )
    assert p.wraps == 1 and p.garbage == 0 and p.comments == 1
    assert b.bus_v is not None and b.bus_v.tolist() == pytest.approx([5.0, 5.0])


def test_ina_csv_counts_garbage_and_skips_it():
    p = synced_parser(nominal_rate_hz=1000)
    blk = p.feed(
        lines(
            "0,1.0", "1000,1.0", "\x00\xff\x13noise", "2000,x", "2000,1.0,", "1,2,3,4", "3000,1.5", "2500,9.0"
        )
    )
    # valid: 0, 1000, 3000; garbage: binary, bad number, empty bus field, 4 fields,
    # and a well-formed line that steps back in time
    assert (blk.t_dev_ns // 1000).tolist() == [0, 1000, 3000]
    assert blk.garbage == 5 and p.garbage == 5
    assert blk.dropped == 1  # 2000 never arrived
    assert blk.bus_v is None


def test_ina_csv_counts_dropped_lines_from_timestamp_gaps():
    p = synced_parser()
    t = [i * 500 for i in range(100)] + [i * 500 for i in range(107, 200)]
    blk = p.feed(lines(*[f"{x},10.0" for x in t]))
    assert len(blk) == 193
    assert p.period_us == 500
    assert blk.dropped + p.feed(b"").dropped == 7


def test_ina_csv_counts_a_gap_that_came_before_the_period_was_known():
    # small reads (a network port): the gap is in the second read, the period
    # is only known after 32 intervals
    p = synced_parser()
    t = [i * 500 for i in range(8)] + [i * 500 for i in range(20, 60)]
    dropped = sum(p.feed(lines(*[f"{x},10.0" for x in t[k : k + 5]])).dropped for k in range(0, len(t), 5))
    assert p.period_us == 500 and dropped == 12


def test_ina_csv_drops_the_cut_line_an_open_or_purge_starts_with():
    p = InaCsvParser()
    # "5,12.0" is the tail of "1234995,12.0" cut by the open: it parses, at a wrong time
    assert len(p.feed(b"995,1")) == 0  # still inside the cut line
    blk = p.feed(b"2.0\n1000,1.0\n2000,1.0\n")
    assert p.garbage == 0 and blk.current_a.tolist() == pytest.approx([0.001, 0.001])  # mA -> A
    p.resync()  # a purge mid-stream: the same again
    blk = p.feed(b"00,7.5\n3000,1.0\n")
    assert p.garbage == 0 and blk.current_a.tolist() == pytest.approx([0.001])


def test_ina_csv_runaway_line_without_newline_is_garbage():
    p = InaCsvParser()
    p.feed(b"0,1.0\n" + b"7" * 500)
    assert p.garbage == 1


def test_ppk2_metadata_parse_and_calibrated_decode():
    meta = parse_metadata(metadata_text().decode())
    assert meta["cal"]["R"] == CAL["R"] and meta["cal"]["O"] == CAL["O"]
    assert meta["hw"] == "9173" and meta["calibrated"] == "1"
    amps = np.array([20e-6, 400e-6, 3e-3, 0.05, 0.3, 0.7, 0.95])
    words = encode_words(amps, np.arange(amps.shape[0]), 3.3)
    ranges = ((words >> 14) & 7).tolist()
    assert ranges == sorted(ranges) and len(set(ranges)) >= 4  # the sweep crosses ranges
    got, counter = decode(words, meta["cal"], 3.3)
    assert got == pytest.approx(amps, rel=0.01)
    assert counter.tolist() == list(range(amps.shape[0]))
    # the nominal (uncalibrated) table is visibly off: calibration is applied
    raw, _ = decode(words, DEFAULT_CAL, 3.3)
    assert np.max(np.abs(raw / amps - 1)) > 0.02


def test_ppk2_counter_jumps_are_dropped_samples():
    dec = Ppk2Decoder(parse_metadata(metadata_text().decode())["cal"], 3.3)
    idx = np.r_[0:100, 137:300]  # 37 lost
    words = encode_words(np.full(idx.shape[0], 0.1), idx, 3.3).astype("<u4").tobytes()
    a = dec.feed(words[:401])  # a read boundary inside a sample
    b = dec.feed(words[401:])
    assert a.dropped + b.dropped == 37
    t = np.concatenate([a.t_dev_ns, b.t_dev_ns])
    assert t.tolist() == (idx * 10_000).tolist()


def test_clock_fit_finds_drift_and_the_latency_envelope():
    rng = np.random.default_rng(3)
    dev = np.arange(0, 20_000_000_000, 10_000_000, dtype=np.int64)  # 20 s, a pair per 10 ms
    drift = 80e-6
    latency = 50_000 + rng.exponential(400_000, dev.shape[0])  # >= 50 us, long tail
    host = 123_456_789_000 + np.rint(dev * (1 + drift) + latency).astype(np.int64)
    f = clockfit.fit(dev, host)
    assert f.to_dict()["drift_ppm"] == pytest.approx(80, abs=2)
    err = f.apply(dev) - (123_456_789_000 + dev * (1 + drift))
    assert np.abs(np.median(err)) < 150_000  # within 150 us of the truth, not the 450 us mean latency
    assert f.residual_us < 100 and f.latency_p95_us > 500


def test_transients_and_threshold_on_a_known_trace():
    t = np.arange(0, 1_000_000_000, 10_000, dtype=np.int64)
    cur = 0.1 + np.random.default_rng(1).normal(0, 0.002, t.shape[0])
    cur[20000:20400] += 0.5  # 4 ms
    cur[50000:50050] += 0.3  # 0.5 ms
    thr = robust_threshold(cur)
    assert 0.105 < thr < 0.125
    runs = find_transients(t, cur, thr, 10_000)
    assert runs == [(20000, 20399), (50000, 50049)]
    assert integrate(t, cur * 0 + 2.0, 100_000_000, 600_000_000) == pytest.approx(1.0)
    m = span_mask(t, np.array([0, 500_000]), np.array([20_000, 520_000]))
    assert np.flatnonzero(m).tolist() == [0, 1, 2, 50, 51, 52]


def test_cross_check_against_board_input_rail():
    samples = [
        {"t_ns": i, "rails": {"VDD_IN": {"v": 5.0, "a": 1.0, "w": 5.0}, "VDD_CPU_GPU_CV": {"w": 2.0}}}
        for i in range(10)
    ]
    cc = cross_check({"mean_w": 5.3}, samples)
    assert cc["rail"] == "VDD_IN" and cc["diff_pct"] == pytest.approx(6.0) and cc["agree"]
    assert cross_check({"mean_w": 9.0}, samples)["agree"] is False
    assert cross_check({"mean_w": None}, samples) is None
    assert cross_check({"mean_w": 5.0}, [{"t_ns": 0, "rails": {}}]) is None


def test_cross_check_sums_the_profile_input_rails_without_a_single_input_rail():
    from agent import profiles
    from agent.rootfs import RootFS
    from agent.telemetry.sysfs import SysfsReader

    root = RootFS("tests/fixtures/agx-orin")
    prof = profiles.resolve(root, "agx-orin")
    rails = SysfsReader(root, prof).read()["rails"]  # the fixture's INA3221 channels
    samples = [{"t_ns": i, "rails": rails} for i in range(5)]
    samples.append({"t_ns": 5, "rails": {"VDD_GPU_SOC": {"w": 50.0}}})  # not every input rail: skipped
    assert cross_check({"mean_w": 8.4}, samples) is None  # no VDD_IN-like rail on AGX Orin
    cc = cross_check({"mean_w": 8.4}, samples, input_rails=prof.input_rails)
    assert cc["rails"] == prof.input_rails and len(prof.input_rails) == 4 and cc["samples"] == 5
    assert cc["board_mean_w"] == pytest.approx(3.190368 + 0.802368 + 3.625792 + 0.496704)
    assert cc["diff_pct"] == pytest.approx(3.508, abs=0.01) and cc["agree"]


@pytest.mark.parametrize(
    "spec, message",
    [
        (MeterSpec("joulescope", "/dev/null"), "unknown meter kind 'joulescope'"),
        (MeterSpec("scpi", "/dev/null", {"dialect": "fluke"}), "meter option dialect='fluke'"),
        (MeterSpec("ppk2", "/dev/null", {"vdd_mv": "9000"}), "meter option vdd_mv='9000': out of range"),
        (MeterSpec("ina-csv", "/dev/null", {"baud": "fast"}), "meter option baud='fast': not a number"),
        (MeterSpec("ina-csv", "/dev/null", {"colour": "red"}), "unknown option(s) for meter ina-csv: colour"),
        (MeterSpec("ppk2", ""), "meter ppk2: empty port"),
    ],
)
def test_bad_meter_specs_are_bad_input_with_one_line(spec, message):
    with pytest.raises(BadInput) as ei:
        make_meter(spec)
    assert message in str(ei.value) and "\n" not in str(ei.value)
    assert ei.value.exit_code == 2


def test_meter_argument_parsing():
    s = parse_meter("scpi:socket://127.0.0.1:7000", ["dialect=owon", "rate = M"])
    assert (s.kind, s.port, s.options) == (
        "scpi",
        "socket://127.0.0.1:7000",
        {"dialect": "owon", "rate": "M"},
    )
    for bad, msg in [
        ("ppk2", "expected KIND:PORT"),
        ("x:/dev/y", "unknown meter kind"),
        ("ppk2:", "KIND:PORT"),
    ]:
        with pytest.raises(BadInput, match=msg):
            parse_meter(bad)
    with pytest.raises(BadInput, match="expected K=V"):
        parse_meter("ppk2:/dev/ttyACM0", ["novalue"])


def test_ina_csv_a_corrupt_far_timestamp_does_not_fake_a_wrap():
    p = synced_parser(nominal_rate_hz=1000)
    blk = p.feed(lines("1000,1.0", "2000,1.0", "3000000000,1.0", "3000,1.0", "4000,1.0"))
    assert (blk.t_dev_ns // 1000).tolist() == [1000, 2000, 3000, 4000]
    assert p.garbage == 1 and p.wraps == 0 and blk.dropped == 0
    # a real pause: the lines after the jump agree with it
    blk = p.feed(lines("60000000,1.0", "60001000,1.0"))
    assert (blk.t_dev_ns // 1000).tolist() == [60000000, 60001000] and p.garbage == 1


def test_cross_check_reads_telemetry_within_the_measured_window(tmp_path):
    import json

    rows = [
        {"t_ns": t, "rails": {"VDD_IN": {"v": 19.0, "a": 0.5, "w": w}}}
        for t, w in [(5, 99.0), (15, 9.0), (25, 11.0)]
    ]
    (tmp_path / "telemetry.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{torn")
    np.save(tmp_path / "iterations.npy", np.array([[0, 9, 0], [10, 20, 1], [20, 30, 1]], dtype=np.int64))
    window = measured_span_ns(load_iterations(tmp_path))
    cc = cross_check({"mean_w": 10.0}, load_telemetry(tmp_path), window_ns=window)
    assert cc["board_mean_w"] == pytest.approx(10.0) and cc["samples"] == 2 and cc["agree"]
