"""Capture + analyze against meter emulators on real pseudo-terminals.

Each emulator plays a known waveform; the assertions compare edgebench's
power{} with the waveform's exact peaks, widths, times and integrals.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import wait_until
from emulators.fixtures import emulators_fixture  # noqa: F401  (the `emulators` fixture)
from emulators.ina_csv import InaCsvEmulator
from emulators.ppk2 import Ppk2Emulator
from emulators.pty import PtyDevice
from emulators.scpi import ScpiEmulator
from emulators.tcp import LoopbackServer
from emulators.waveform import Spike, Waveform

from agent.errors import BadInput
from agent.power.analysis import analyze
from agent.power.capture import Capture
from agent.power.trace import load_trace
from agent.spec import MeterSpec

PERIOD_S = 0.05  # one inference every 50 ms, 40 ms long
N_IT = 20
IT0_S = 0.2


def iterations_for(t0_ns: int, n: int = N_IT, warmup: int = 0) -> np.ndarray:
    rows = []
    for k in range(n):
        s = t0_ns + int((IT0_S + k * PERIOD_S) * 1e9)
        rows.append((s, s + int(0.04 * 1e9), 0 if k < warmup else 1))
    return np.array(rows, dtype=np.int64)


def capture_for(spec: MeterSpec, run_dir, seconds: float) -> dict:
    cap = Capture(spec, run_dir)
    cap.start()
    time.sleep(seconds)  # the capture runs in real time: this is the "run"
    return cap.stop()


@pytest.fixture(scope="module")
def ppk2_run(tmp_path_factory):
    """One 1.4 s PPK2 capture shared by the tests below: three spikes 5 ms after
    an inference start (the first inside the first five inferences), noise,
    37 samples lost on the link."""
    wf = Waveform(
        baseline_a=0.08,
        noise_a=0.001,
        spikes=[Spike(0.255, 0.42, 0.004), Spike(0.505, 0.20, 0.012), Spike(0.755, 0.30, 0.002)],
    )
    emu = Ppk2Emulator(wf, skips=[(0.62, 37)]).start()
    run_dir = tmp_path_factory.mktemp("ppk2")
    try:
        summary = capture_for(MeterSpec("ppk2", emu.port, {"vdd_mv": "3300"}), run_dir, 1.4)
    finally:
        # the emulator reads AverageStop (0x07) a moment after the capture sends it
        wait_until(lambda: emu.commands[-1:] == [(0x07,)], timeout=5, step=0.005)
        emu.stop()
    it = iterations_for(emu.t0_ns)
    power = analyze(load_trace(run_dir), it, budget_w=2.0, supply_v=5.0, run_start_ns=emu.t0_ns)
    return {"wf": wf, "emu": emu, "summary": summary, "power": power, "dir": run_dir, "it": it}


def test_ppk2_handshake_follows_the_protocol(ppk2_run):
    cmds = ppk2_run["emu"].commands
    assert (0x19,) in cmds  # GetMetadata
    assert (0x11, 1) in cmds  # SetPowerMode: ampere meter
    assert (0x0D, 0x0C, 0xE4) in cmds  # RegulatorSet 3300 mV
    assert cmds.index((0x06,)) > cmds.index((0x19,))  # AverageStart after calibration
    assert cmds[-1] == (0x07,)  # AverageStop at the end
    meta = json.loads((ppk2_run["dir"] / "power.json").read_text())
    assert meta["meter"]["calibration"]["R"][4] == pytest.approx(0.0431)
    # digital channel D0 is high during each of the three spikes: 6 edges
    assert meta["meter"]["logic_channels_seen"] == [0] and meta["meter"]["logic_edges"] == 6


def test_ppk2_peaks_within_2_percent_and_transients_counted(ppk2_run):
    p, wf = ppk2_run["power"], ppk2_run["wf"]
    assert p["peak_a"] == pytest.approx(wf.peak(), rel=0.02)
    assert p["transient_count"] == 3
    for got, spike in zip(p["transients"], wf.spikes, strict=True):
        assert got["peak_a"] == pytest.approx(wf.baseline_a + spike.height_a, rel=0.02)
        assert got["duration_ms"] == pytest.approx(spike.width_s * 1e3, abs=0.05)
        assert got["t_s"] == pytest.approx(spike.t_s, abs=0.0015)  # clock mapping error
        assert got["offset_from_inference_start_ms"] == pytest.approx(5.0, abs=1.5)
    assert p["peak_w"] == pytest.approx(wf.peak() * 5.0, rel=0.02)
    assert p["over_budget"] is True and p["voltage_source"] == "profile"


def test_ppk2_first_inferences_peak_vs_steady_peak(ppk2_run):
    p, wf = ppk2_run["power"], ppk2_run["wf"]
    assert p["first_inferences_peak_a"] == pytest.approx(wf.baseline_a + 0.42, rel=0.02)
    assert p["steady_peak_a"] == pytest.approx(wf.baseline_a + 0.30, rel=0.02)


def test_ppk2_dropped_samples_counted_from_the_counter(ppk2_run):
    s = ppk2_run["summary"]
    assert s["dropped_samples"] == 37 == ppk2_run["power"]["dropped_samples"]
    assert s["partial"] is False and s["gaps"] == []
    assert s["sample_rate_hz"] == pytest.approx(100_000, rel=0.001)
    assert s["samples"] > 100_000
    assert s["clock_fit"]["residual_us"] < 1000


def test_ppk2_energy_per_inference_matches_the_waveform_integral(ppk2_run):
    p, wf, it = ppk2_run["power"], ppk2_run["wf"], ppk2_run["it"]
    t0 = ppk2_run["emu"].t0_ns
    w0, w1 = (it[0, 0] - t0) / 1e9, (it[-1, 1] - t0) / 1e9
    expected_j = 5.0 * wf.integral(w0, w1) / N_IT
    assert p["energy_per_inference_j"] == pytest.approx(expected_j, rel=0.01)
    assert p["mean_a"] == pytest.approx(wf.integral(w0, w1) / (w1 - w0), rel=0.01)


def test_ppk2_samples_are_compact_binary(ppk2_run):
    meta, t, cur, bus = load_trace(ppk2_run["dir"])
    assert (ppk2_run["dir"] / "power.bin").stat().st_size == 16 * meta["samples"]
    assert np.all(np.diff(t) > 0) and np.isnan(bus).all()


def test_ina_csv_wrap_garbage_drops_and_bus_voltage(emulators, tmp_path):
    wf = Waveform(baseline_a=0.5, noise_a=0.003, bus_v=12.0, spikes=[Spike(0.45, 1.5, 0.02)])
    emu = emulators(
        InaCsvEmulator,
        wf,
        rate_hz=2000,
        t_us_start=(1 << 32) - 300_000,  # the counter wraps 0.3 s in
        garbage=[
            (0.2, b"\x00\xff\x7fgarbage\n"),
            (0.35, b"12x,,\n"),
            (0.5, b"# a comment\n"),
            (0.6, b"4294\n"),
        ],
        skips=[(0.7, 25)],
    )
    s = capture_for(MeterSpec("ina-csv", emu.port, {"baud": "921600"}), tmp_path, 0.9)
    p = analyze(load_trace(tmp_path), None, supply_v=5.0, run_start_ns=emu.t0_ns)
    meta = json.loads((tmp_path / "power.json").read_text())
    assert meta["meter"]["wraps"] == 1
    assert s["garbage"] == 3 and s["dropped_samples"] == 25
    _, t, _, _ = load_trace(tmp_path)
    assert np.all(np.diff(t) > 0)  # monotonic through the wrap
    assert p["voltage_source"] == "meter"  # bus voltage from the meter wins over supply_v
    assert p["peak_w"] == pytest.approx(2.0 * 12.0, rel=0.02)
    assert p["transient_count"] == 1
    assert p["transients"][0]["duration_ms"] == pytest.approx(20.0, abs=0.6)  # one 0.5 ms sample
    assert p["transients"][0]["t_s"] == pytest.approx(0.45, abs=0.003)


def test_meter_unplugged_mid_run_marks_power_partial(emulators, tmp_path):
    wf = Waveform(baseline_a=0.2, spikes=[Spike(0.2, 0.6, 0.01)])
    emu = emulators(InaCsvEmulator, wf, rate_hz=2000, disconnect_at_s=0.4)
    s = capture_for(MeterSpec("ina-csv", emu.port), tmp_path, 0.9)
    assert s["partial"] is True
    assert len(s["gaps"]) == 1 and "meter lost" in s["gaps"][0]["reason"]
    gap = s["gaps"][0]
    assert gap["end_ns"] > gap["start_ns"]
    assert 0.3 * 2000 < s["samples"] < 0.45 * 2000
    p = analyze(load_trace(tmp_path), None, run_start_ns=emu.t0_ns)
    assert p["partial"] is True and p["gaps"][0]["t_s"] == pytest.approx(0.4, abs=0.05)
    assert p["peak_a"] == pytest.approx(0.8, rel=0.02)  # what came before the unplug is kept


@pytest.mark.parametrize("dialect", ["keysight", "owon"])
def test_scpi_dmm_polled_readings(emulators, tmp_path, dialect):
    wf = Waveform(baseline_a=0.05, spikes=[Spike(0.3, 0.5, 0.3)])
    emu = emulators(ScpiEmulator, wf, dialect=dialect, garbage_every=9)
    s = capture_for(MeterSpec("scpi", emu.port, {"dialect": dialect}), tmp_path, 0.8)
    p = analyze(load_trace(tmp_path), None, supply_v=12.0, run_start_ns=emu.t0_ns)
    assert "CONF:CURR:DC" in emu.commands and emu.commands[0] == "*IDN?"
    if dialect == "keysight":
        assert {"SAMP:COUN 1", "TRIG:SOUR IMM", "READ?", "*OPC?"} <= set(emu.commands)
    else:
        assert {"RATE F", "MEAS?"} <= set(emu.commands) and "*OPC?" not in emu.commands
    assert s["samples"] > 20 and s["garbage"] >= 1
    assert p["peak_a"] == pytest.approx(0.55, rel=0.02)
    assert p["transient_count"] == 1
    assert p["transients"][0]["duration_ms"] == pytest.approx(300, abs=40)  # polled: ~a reading's spacing
    meta = json.loads((tmp_path / "power.json").read_text())
    assert meta["meter"]["idn"].startswith("Keysight" if dialect == "keysight" else "OWON")


def test_port_that_cannot_be_opened_is_bad_input(tmp_path):
    with pytest.raises(BadInput) as ei:
        Capture(MeterSpec("ina-csv", str(tmp_path / "ttyUSB9")), tmp_path).start()
    assert "cannot open meter port" in str(ei.value) and "\n" not in str(ei.value)
    assert not (tmp_path / "power.bin").exists()  # nothing stored


def test_silent_port_is_not_a_ppk2(tmp_path):
    dev = PtyDevice()  # a pty nobody answers on
    try:
        with pytest.raises(BadInput, match="no metadata"):
            Capture(MeterSpec("ppk2", dev.port, {"metadata_timeout_s": "0.3"}), tmp_path).start()
    finally:
        dev.close()


class _Ser2NetInaCsv(LoopbackServer):
    """An ina-csv streamer behind a TCP port (ser2net style, socket://), one
    line per ~1/rate s stamped with its own clock. The first connection is cut
    after ``cut_s``; the meter then "reboots" and streams again from t_us = 0
    on the next connection."""

    def __init__(self, wf: Waveform, rate_hz: float = 2000.0, cut_s: float = 0.3) -> None:
        self.wf, self.rate, self.cut_s = wf, rate_hz, cut_s
        self.t0_ns = time.monotonic_ns()
        super().__init__()

    def handle(self, conn, n: int) -> None:
        boot = time.monotonic_ns()
        with conn:
            while not self.stopping.is_set():
                # like a real streamer: each line carries the time it was measured
                now = time.monotonic_ns()
                if n == 1 and now - boot > self.cut_s * 1e9:
                    break  # unplugged
                a = float(self.wf.current(np.array([(now - self.t0_ns) / 1e9]))[0])
                try:
                    conn.sendall(f"{(now - boot) // 1000},{a * 1000:.3f}\n".encode())
                except OSError:
                    break
                time.sleep(1 / self.rate)  # the meter's sample rate: the behaviour, not a wait


def test_socket_meter_replugged_mid_run_starts_a_new_segment(tmp_path):
    # Cut at 0.3 s; the reader closes the dead port (pyserial's socket:// close()
    # sleeps 0.3 s) and retries every 0.5 s: the new segment starts at ~1.1 s.
    # The spike sits well inside it, so its rising edge is sampled, not the
    # reconnect (a spike at 1.1 s read the reconnect's jitter as its time).
    wf = Waveform(baseline_a=0.25, spikes=[Spike(1.4, 0.5, 0.1)])
    srv = _Ser2NetInaCsv(wf)
    try:
        s = capture_for(MeterSpec("ina-csv", f"socket://127.0.0.1:{srv.port}"), tmp_path, 1.8)
    finally:
        srv.close()
    assert srv.connections >= 2
    assert s["partial"] is True and len(s["gaps"]) == 1
    gap = s["gaps"][0]
    assert "meter lost" in gap["reason"] and gap["end_ns"] - gap["start_ns"] < 1.2e9
    meta = json.loads((tmp_path / "power.json").read_text())
    assert len(meta["segments"]) == 2  # the re-plugged meter's clock restarted at 0
    _, t, _, _ = load_trace(tmp_path)
    assert np.all(np.diff(t) > 0)
    p = analyze(load_trace(tmp_path), None, run_start_ns=srv.t0_ns)
    assert p["transient_count"] == 1
    assert p["transients"][0]["peak_a"] == pytest.approx(0.75, rel=0.02)
    assert p["transients"][0]["t_s"] == pytest.approx(1.4, abs=0.01)  # few clock pairs after a re-plug


@pytest.mark.serial  # against the wall clock (a rate, a span of samples): run alone (Makefile)
def test_unanswered_run_start_purge_over_rfc2217_does_not_fail_the_capture(emulators, tmp_path):
    from emulators.rfc2217 import Rfc2217Server

    emu = emulators(InaCsvEmulator, Waveform(baseline_a=0.3, bus_v=5.0), rate_hz=1000)
    # pyserial's open() purges twice (answered); the run-start purge gets no answer
    with Rfc2217Server(emu.port, purge_answers=2) as srv:
        spec = MeterSpec("ina-csv", f"{srv.url}?timeout=1")  # the client's network timeout: 1 s
        s = capture_for(spec, tmp_path, 0.5)
    assert srv.purges == 3
    meter = json.loads((tmp_path / "power.json").read_text())["meter"]
    assert "timeout while waiting for option 'purge'" in meter["purge_error"]
    assert s["partial"] is False and s["gaps"] == [] and s["samples"] > 300
    _, _, cur, bus = load_trace(tmp_path)
    # every record, the first included: the line the purge cut is dropped, not parsed
    assert cur == pytest.approx(np.full(cur.shape[0], 0.3))
    assert bus == pytest.approx(np.full(bus.shape[0], 5.0))


def test_ppk2_source_mode_powers_the_board_and_gives_the_voltage(emulators, tmp_path):
    wf = Waveform(baseline_a=0.2, noise_a=0.0005)
    emu = emulators(Ppk2Emulator, wf)
    capture_for(MeterSpec("ppk2", emu.port, {"mode": "source", "vdd_mv": "4200"}), tmp_path, 0.3)
    assert (0x11, 2) in emu.commands and (0x0D, 0x10, 0x68) in emu.commands  # source mode, 4200 mV
    assert (0x0C, 1) in emu.commands  # DeviceRunningSet: DUT power on
    p = analyze(load_trace(tmp_path), None, supply_v=12.0)
    assert p["voltage_source"] == "meter" and p["mean_w"] == pytest.approx(0.2 * 4.2, rel=0.02)


def test_scpi_keysight_batches_of_readings_are_spread_in_time(emulators, tmp_path):
    emu = emulators(ScpiEmulator, Waveform(baseline_a=0.12), dialect="keysight")
    opts = {"dialect": "keysight", "samples": "5", "interval_s": "0.002", "range": "1"}
    s = capture_for(MeterSpec("scpi", emu.port, opts), tmp_path, 0.4)
    assert {"CONF:CURR:DC 1", "SAMP:COUN 5", "SAMP:SOUR TIM", "SAMP:TIM 0.002"} <= set(emu.commands)
    assert s["samples"] >= 10 and s["samples"] % 5 == 0
    _, t, cur, _ = load_trace(tmp_path)
    assert np.all(np.diff(t[:5]) == 2_000_000) and cur == pytest.approx(np.full(cur.shape, 0.12), rel=1e-6)
