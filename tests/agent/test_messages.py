"""Worker -> agent messages (agent/messages.py): the wire dicts the pump and
the journal have always read, typed at both ends."""

from __future__ import annotations

import numpy as np

from agent import messages
from agent.load.loop import window


def test_each_message_survives_the_wire_as_the_documented_dict():
    sent = [
        messages.Phase("measure", 5),
        messages.Progress(7, 10, 0.5, 2.0, 20.0),
        messages.Progress(7, 10, 0.5, 2.0, 20.0, frames=12, late=1, dropped=2),
        messages.Window(1, 2, 3, 4.0, 0.5, 0.9),
        messages.Window(1, 2, 3, 4.0, 0.5, 0.9, frames=0, late=0, dropped=0, miss_rate=None),
        messages.Schedule(9, 9, [9, 19]),
        messages.Result({"iterations": 3}),
        messages.Error("bad_input", "no such input", 11),
    ]
    for m in sent:
        wire = m.to_dict()
        assert wire["type"] == m.TYPE
        assert messages.parse(wire) == m
    assert sent[0].to_dict() == {"type": "phase", "phase": "measure", "t_ns": 5}
    # the load pattern's counts travel only with a load pattern
    assert "frames" not in sent[1].to_dict() and sent[2].to_dict()["dropped"] == 2
    assert sent[4].to_dict()["miss_rate"] is None and "miss_rate" in sent[4].to_dict()
    assert sent[3].frame_counts() == {}
    # an error from the task carries no time; one from the worker's entry does
    assert "t_ns" not in messages.Error("run_failed", "x").to_dict()


def test_the_pump_survives_an_unknown_type_and_a_short_message():
    assert messages.parse({"type": "telepathy", "t_ns": 1}) is None
    assert messages.parse({"t_ns": 1}) is None
    short = messages.parse({"type": "progress", "extra": 1})
    assert isinstance(short, messages.Progress) and short.iterations is None
    assert messages.parse({"type": "result"}) == messages.Result({})


def test_a_window_message_holds_the_span_and_its_latency_percentiles():
    lat_ns = np.array([1_000_000, 3_000_000, 2_000_000], dtype=np.int64)
    w = window(0, 2_000_000_000, lat_ns)
    assert (w.iterations, w.throughput_ips, w.p50_ms, w.p99_ms) == (3, 1.5, 2.0, 3.0)
    assert window(0, 1, lat_ns[:0]).p50_ms is None
