"""bench --sweep (controller/sweep/): the axes and their refusals, the Pareto
front and the best point, and a real sweep through the session layer on a
dynamic-batch CNN the project builds: one stored run per point labelled
sweep=<id>, the table in every format, a resumed sweep that runs nothing
twice (a point whose run had started is followed, not rerun), and bad specs
that exit 2 with nothing stored."""

from __future__ import annotations

import argparse
import json

import pytest
from conftest import stored_rows

from agent.errors import BadInput
from controller.cli import main
from controller.db import ResultsDB
from controller.models.onnx_cnn import build_cnn
from controller.sweep import axes, pareto
from controller.sweep.record import Record

FAST = ["--warmup", "0", "--duration", "0.2", "--min-iterations", "5", "--no-telemetry", "--quiet"]


def test_axes_parse_in_order_and_make_the_cartesian_product():
    ax = axes.parse(
        ["threads=1,2", "batch=1,8", "input_shape=x:1x3x320x320,x=1x3x640x640", "provider=cuda+cpu"]
    )
    assert ax == {
        "threads": [1, 2],
        "batch": [1, 8],
        "input_shape": ["x=1x3x320x320", "x=1x3x640x640"],
        "provider": ["cuda+cpu"],
    }
    pts = axes.points(ax)
    assert len(pts) == 8 and pts[0] == {
        "threads": 1,
        "batch": 1,
        "input_shape": "x=1x3x320x320",
        "provider": "cuda+cpu",
    }
    assert pts[-1]["threads"] == 2 and pts[1]["input_shape"] == "x=1x3x640x640"  # the first axis is slowest
    ns = axes.apply(argparse.Namespace(input_shape=["x=1x3x1x1", "y=1x2"], provider=[]), pts[0])
    assert ns.input_shape == ["y=1x2", "x=1x3x320x320"] and ns.provider == ["cuda", "cpu"] and ns.batch == 1


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["color=red"], "unknown sweep axis 'color'; expected one of threads, batch"),
        (["threads="], "--sweep threads= has an empty value list"),
        (["threads=1,,2"], "--sweep threads= has an empty value list"),
        (["threads"], "bad --sweep 'threads': expected AXIS=V1,V2"),
        (["threads=1", "threads=2"], "sweep axis threads given twice"),
        (["batch=0"], "bad --sweep batch value '0': expected a positive integer"),
        (["batch=2,2"], "--sweep batch lists a value twice"),
        (["input_shape=x:1xAx3"], "bad --sweep input_shape value 'x:1xAx3'"),
    ],
)
def test_bad_axes_are_one_line(texts, message):
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace("+", r"\+")):
        axes.parse(texts)


def test_the_pareto_front_and_the_best_point_for_each_objective():
    pts = [
        {"throughput_sps": 100.0, "p99_ms": 5.0},
        {"throughput_sps": 300.0, "p99_ms": 9.0},
        {"throughput_sps": 200.0, "p99_ms": 9.5},  # dominated by the second
        {"throughput_sps": 400.0, "p99_ms": 30.0},
        {"throughput_sps": None, "p99_ms": None},  # a failed point
    ]
    assert pareto.front(pts) == [0, 1, 3]
    assert pareto.best(pts, "throughput") == 3
    assert pareto.best(pts, "throughput", p99_max_ms=10.0) == 1
    assert pareto.best(pts, "p99") == 0
    assert pareto.best(pts, "throughput", p99_max_ms=1.0) is None


@pytest.fixture(scope="module")
def dyn_model(tmp_path_factory):
    return build_cnn(
        tmp_path_factory.mktemp("m") / "dyn.onnx", size=32, widths=(8, 16), classes=10, batch="N"
    )


def test_a_sweep_runs_each_point_once_and_resumes_without_rerunning(env, dyn_model, capsys):
    out = env / "sweep.json"
    args = ["bench", str(dyn_model), *FAST, "--sweep", "threads=1,2", "--sweep", "batch=1,4"]
    outputs = [
        "--json",
        str(out),
        "--md",
        str(env / "s.md"),
        "--html",
        str(env / "s.html"),
        "--plot",
        str(env / "s.png"),
    ]
    assert main([*args, *outputs]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    sid = doc["sweep_id"]
    assert doc["axes"] == {"threads": [1, 2], "batch": [1, 4]}
    assert [(p["threads"], p["batch"]) for p in doc["points"]] == [(1, 1), (1, 4), (2, 1), (2, 4)]
    for p in doc["points"]:
        assert p["status"] == "completed" and p["throughput_sps"] > 0 and p["run_id"]
        # a batch of 4 counts 4 samples per call
        assert p["throughput_sps"] == pytest.approx(p["calls_per_s"] * p["batch"])
        assert p["p99_per_sample_ms"] == pytest.approx(p["p99_ms"] / p["batch"])
        assert p["placement"].startswith("CPU ")
    assert any(p["pareto"] for p in doc["points"]) and doc["best"]["objective"] == "throughput"
    best = doc["points"][doc["best"]["index"]]
    assert best["throughput_sps"] == max(p["throughput_sps"] for p in doc["points"])
    rows = stored_rows()
    assert len(rows) == 4 and {r["run_id"] for r in rows} == {p["run_id"] for p in doc["points"]}
    db = ResultsDB()
    try:
        stored = [db.get(r["run_id"]) for r in rows]
    finally:
        db.close()
    assert all(
        d["labels"]["sweep"] == sid and d["labels"]["sweep_point"].startswith("threads=") for d in stored
    )
    assert f"sweep {sid}: 4 point(s)" in text and "best (most samples/s)" in text
    assert "| threads | batch | samples/s |" in (env / "s.md").read_text()
    assert "data:image/png;base64," in (env / "s.html").read_text()
    assert (env / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same sweep again: every point is done, nothing runs, nothing is stored twice
    assert main([*args, "--json", str(out)]) == 0
    again = json.loads(out.read_text())
    assert [p["run_id"] for p in again["points"]] == [p["run_id"] for p in doc["points"]]
    assert len(stored_rows()) == 4

    # a controller that died while the last point ran: that run is followed, not rerun
    rec_path = env / "home" / "sweeps" / f"{sid}.json"
    rec = json.loads(rec_path.read_text())
    rec["points"][-1]["done"] = False
    rec["points"][-1].pop("figures")
    rec_path.write_text(json.dumps(rec))
    assert main([*args, "--json", str(out)]) == 0
    resumed = json.loads(out.read_text())
    assert resumed["points"][-1]["run_id"] == doc["points"][-1]["run_id"]
    assert len(stored_rows()) == 4
    assert Record(rec_path, json.loads(rec_path.read_text())).entries[-1]["done"] is True


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (["--sweep", "speed=1,2"], "unknown sweep axis 'speed'"),
        (["--sweep", "threads="], "empty value list"),
        (["--sweep", "input_shape=image:1x3x64x64"], "sweep point input_shape=image=1x3x64x64: wrong shape"),
        (["--sweep", "batch=1,4"], "sweep point batch=4: input 'x' has a static batch of 1"),
        (["--sweep", "threads=1,2", "--threads", "2"], "--threads and --sweep threads both set it"),
        (
            ["--sweep", "accelerator=npu"],
            "has no accelerator 'npu'; available",
        ),
        (
            ["--sweep", "provider=cpu,tensorrt"],
            "sweep point provider=tensorrt: provider 'tensorrt' is not available in this onnxruntime build",
        ),
    ],
)
def test_bad_sweep_specs_exit_2_and_store_nothing(env, dyn_model, tiny_onnx_model, capsys, sweep, message):
    model = tiny_onnx_model if "static batch" in message else dyn_model
    assert main(["bench", str(model), *FAST, *sweep]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("edgebench: error: "), err
    assert not (env / "r.db").exists() or stored_rows() == []
    assert not (env / "home" / "sweeps").exists()


def test_sweep_outputs_without_a_sweep_are_refused(env, dyn_model, capsys):
    assert main(["bench", str(dyn_model), *FAST, "--md", "x.md"]) == 2
    assert "--md applies to a sweep" in capsys.readouterr().err


def test_a_sweep_job_in_a_fleet_plan_runs_one_item_per_point_and_board(env, dyn_model, capsys):
    import shutil

    from conftest import spawn_agent

    agents = [spawn_agent(env / f"state{i}") for i in range(2)]
    try:
        inv = ["boards:"] + [f"  - name: b{i}\n    address: {a.address}" for i, a in enumerate(agents)]
        (env / "boards.yaml").write_text("\n".join(inv) + "\n")
        shutil.copy(dyn_model, env / "dyn.onnx")
        plan = env / "plan.yaml"
        plan.write_text(
            "inventory: boards.yaml\njobs:\n  - name: sw\n    kind: sweep\n    models: [dyn.onnx]\n"
            "    boards: {all: true}\n"
            "    options: {sweep: [threads=1, 'batch=1,2'], duration: 0.2, warmup: 0, min_iterations: 5,"
            " no_telemetry: true}\n"
        )
        assert main(["fleet", "run", str(plan), "--json", str(env / "f.json")]) == 0, capsys.readouterr().err
    finally:
        for a in agents:
            a.stop()
    db = ResultsDB()
    try:
        docs = [db.get(r["run_id"]) for r in db.query(limit=None)]
    finally:
        db.close()
    # 2 points x 2 boards, each stored once, labelled with the sweep and its point
    assert len(docs) == 4
    assert (
        sorted(d["labels"]["sweep_point"] for d in docs)
        == ["threads=1,batch=1"] * 2 + ["threads=1,batch=2"] * 2
    )
    assert {d["labels"]["sweep"] for d in docs} == {"sw"} and {d["batch"] for d in docs} == {1, 2}


def test_a_bad_sweep_job_is_refused_with_its_plan_line(env, tiny_onnx_model, capsys):
    import shutil

    (env / "boards.yaml").write_text("boards:\n  - name: b0\n    address: 127.0.0.1:1\n")
    shutil.copy(tiny_onnx_model, env / "tiny.onnx")
    plan = env / "plan.yaml"
    plan.write_text(
        "inventory: boards.yaml\njobs:\n  - name: sw\n    kind: sweep\n    models: [tiny.onnx]\n"
        "    boards: {all: true}\n    options: {sweep: ['batch=1,4']}\n"
    )
    assert main(["fleet", "run", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "plan.yaml:7" in err and "sweep point batch=4: input 'x' has a static batch of 1" in err, err


def test_a_metered_sweep_gives_energy_per_inference_and_per_sample(env, dyn_model, capsys):
    from emulators.ina_csv import InaCsvEmulator
    from emulators.waveform import Waveform

    emu = InaCsvEmulator(Waveform(baseline_a=0.4, bus_v=5.0, spikes=[]), rate_hz=2000).start()  # a steady 2 W
    try:
        out = env / "m.json"
        rc = main(["bench", str(dyn_model), *FAST, "--duration", "0.5", "--sweep", "batch=1,2",
                   "--meter", f"ina-csv:{emu.port}", "--json", str(out)])  # fmt: skip
    finally:
        emu.stop()
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    for p in doc["points"]:
        # energy per call = mean power / calls per second; a call of batch N carries N samples
        assert p["energy_per_inference_j"] == pytest.approx(2.0 / p["calls_per_s"], rel=0.15)
        assert p["energy_per_sample_j"] == pytest.approx(p["energy_per_inference_j"] / p["batch"])
    assert "J/inf" in capsys.readouterr().out
