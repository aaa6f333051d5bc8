"""`edgebench quantize` choices that must not lie: per-channel weights by
default (per-tensor only when asked or when a target needs it, and then the
report says why), --out that would overwrite the input or create a missing
directory, --target directions, and a model whose nodes have no names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from controller.cli import main
from controller.models import onnx_cnn


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("qopt")
    rng = np.random.default_rng(0)
    out = {"model": onnx_cnn.tiny_cnn(d / "cnn.onnx")}
    for name, n in (("cal", 8), ("val", 4)):
        out[name] = d / f"{name}.npz"
        np.savez(out[name], image=rng.standard_normal((n, 3, 96, 96)).astype(np.float32))
    return out


def _weight_scales(model: Path) -> list[int]:
    """The number of scales of each weight's DequantizeLinear (1: per-tensor)."""
    m = onnx.load(str(model))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    return [
        inits[n.input[1]].size
        for n in dq
        if inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim == 4
    ]


def _quantize(capsys, *args: str) -> tuple[int, str]:
    rc = main(["quantize", *args])
    said = capsys.readouterr()
    return rc, said.out + said.err


def test_weights_are_per_channel_by_default_and_per_tensor_says_why(sets, tmp_path, capsys):
    base = [str(sets["model"]), "--calibration", str(sets["cal"])]
    rc, said = _quantize(capsys, *base, "--out", str(tmp_path / "d.onnx"), "--json", str(tmp_path / "d.json"))
    assert rc == 0 and json.loads((tmp_path / "d.json").read_text())["options"]["per_channel"] is True
    scales = _weight_scales(tmp_path / "d.onnx")
    assert scales and all(s > 1 for s in scales) and "per-channel" in said
    for preset in ("cpu", "xnnpack", "openvino", "tensorrt", "tidl"):
        rc, said = _quantize(capsys, *base, "--out", str(tmp_path / f"{preset}.onnx"), "--preset", preset)
        assert rc == 0 and "weights int8 per-channel" in said, preset
    rc, said = _quantize(capsys, *base, "--out", str(tmp_path / "t.onnx"), "--per-tensor")
    assert rc == 0 and all(s == 1 for s in _weight_scales(tmp_path / "t.onnx"))
    assert "weights int8 per-tensor (--per-tensor)" in said
    rc, said = _quantize(capsys, *base, "--out", str(tmp_path / "m.onnx"), "--preset", "tidl-mmav1")
    assert rc == 0 and all(s == 1 for s in _weight_scales(tmp_path / "m.onnx"))
    assert "per-tensor (--preset tidl-mmav1: TDA4VM's MMAv1" in said


def test_out_may_not_overwrite_the_input_or_create_directories(sets, tmp_path, capsys):
    model = tmp_path / "cnn.onnx"
    model.write_bytes(sets["model"].read_bytes())
    before = model.read_bytes()
    (tmp_path / "link.onnx").symlink_to(model)
    base = [str(model), "--calibration", str(sets["cal"])]
    cases = [
        (["--out", str(model)], "would overwrite the input model"),
        (["--out", str(tmp_path / "." / "cnn.onnx")], "would overwrite the input model"),
        (["--out", str(tmp_path / "link.onnx")], "would overwrite the input model"),
        (["--out", str(tmp_path / "nonexistent" / "dir" / "q.onnx")], "does not exist"),
        (["--out", str(tmp_path)], "is a directory"),
    ]
    for args, words in cases:
        rc, said = _quantize(capsys, *base, *args)
        lines = said.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and words in lines[0], (args, said)
    assert model.read_bytes() == before and not (tmp_path / "nonexistent").exists()


def test_target_directions_follow_each_metric(sets, tmp_path, capsys):
    base = [str(sets["model"]), "--calibration", str(sets["cal"]), "--out", str(tmp_path / "q.onnx")]
    base += ["--validation", str(sets["val"])]
    for target, words in (("nmse>=0.5", "nmse is better lower; write nmse<=X"),
                          ("cosine<=0.9", "cosine is better higher; write cosine>=X")):  # fmt: skip
        rc, said = _quantize(capsys, *base, "--target", target)
        lines = said.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and words in lines[0], said
    assert not (tmp_path / "q.onnx").exists()


def _unnamed_cnn(path: Path) -> tuple[Path, int]:
    """A valid ONNX CNN whose nodes carry no names, and its MACs counted by hand."""
    rng = np.random.default_rng(0)

    def w(name: str, shape: tuple) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)

    inits = [
        w("w1", (8, 3, 3, 3)),
        w("b1", (8,)),
        w("w2", (8, 1, 3, 3)),
        w("w3", (16, 8, 1, 1)),
        w("fc", (16, 10)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], group=8, pads=[1, 1, 1, 1]),  # depthwise
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"]),
        helper.make_node("GlobalAveragePool", ["c3"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    g = helper.make_graph(nodes, "unnamed", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    hw = 16 * 16  # every conv keeps 16x16: outputs x (Cin/group x k x k)
    macs = hw * 8 * 27 + hw * 8 * 9 + hw * 16 * 8 + 16 * 10
    return path, macs


def test_a_model_with_unnamed_nodes_reports_consistent_figures(tmp_path, capsys):
    model, macs = _unnamed_cnn(tmp_path / "unnamed.onnx")
    assert all(not n.name for n in onnx.load(str(model)).graph.node)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "cal.npz", x=rng.standard_normal((8, 3, 16, 16)).astype(np.float32))
    np.savez(tmp_path / "val.npz", x=rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    out = tmp_path / "q.onnx"
    base = [str(model), "--calibration", str(tmp_path / "cal.npz"), "--out", str(out)]
    rc, said = _quantize(capsys, *base, "--json", str(tmp_path / "q.json"))
    rep = json.loads((tmp_path / "q.json").read_text())
    assert rc == 0 and "8 node(s) without a unique name" in said
    # every node runs in INT8 (both Relus folded into their Conv's range), all MACs with them
    assert (
        rep["nodes"] == 8 and rep["nodes_int8"] == 8 and rep["macs"] == macs and rep["macs_share_int8"] == 1
    )
    assert rep["size_ratio"] == pytest.approx(model.stat().st_size / out.stat().st_size, abs=1e-3)
    assert ("smaller" in said) == (rep["size_ratio"] >= 1) and ("larger" in said) == (rep["size_ratio"] < 1)

    # --exclude by the name given: one node fewer in INT8, its MACs out of the INT8 share
    rc, said = _quantize(capsys, *base, "--exclude", "MatMul_7", "--json", str(tmp_path / "e.json"))
    rep = json.loads((tmp_path / "e.json").read_text())
    assert rc == 0 and rep["nodes_int8"] == 7 and "kept in float (--exclude)  MatMul_7" in said
    assert rep["macs_share_int8"] == pytest.approx(round((macs - 16 * 10) / macs, 4))

    # --target: a first search that cannot meet it gives the value one float node reaches;
    # a second search with that value as its target keeps exactly one node in float
    # (the value written to 12 digits rounded down: rounded up, one node no longer meets it)
    val = ["--validation", str(tmp_path / "val.npz")]
    rc, _ = _quantize(
        capsys, *base, *val, "--target", "cosine>=0.99999999", "--json", str(tmp_path / "u.json")
    )
    steps = json.loads((tmp_path / "u.json").read_text())["steps"]
    one = next(st for st in steps if len(st["float_nodes"]) == 1)
    assert rc == 3 and one["value"] > steps[0]["value"]
    rc, said = _quantize(
        capsys,
        *base,
        *val,
        "--target",
        f"cosine>={one['value'] - 5e-13:.12g}",
        "--json",
        str(tmp_path / "t.json"),
    )
    rep = json.loads((tmp_path / "t.json").read_text())
    floats = rep["float_nodes"]
    assert rc == 0 and rep["met"] and floats == one["float_nodes"] and rep["value"] >= one["value"] - 1e-12
    assert rep["nodes_int8"] == rep["nodes"] - 1 and floats[0] in {
        n.name for n in onnx.load(str(out)).graph.node
    }
    assert rep["macs"] == macs and "kept in float (--exclude)" not in said
    assert f"kept in float (target)  {floats[0]}" in said


def test_optimize_takes_the_same_per_tensor_choice(sets, tmp_path, capsys):
    # refused while the options are built, before anything is quantized or run
    args = ["optimize", str(sets["model"]), "--calibration", str(sets["cal"])]
    args += ["--validation", str(sets["val"]), "--out-dir", str(tmp_path / "o")]
    rc = main([*args, "--per-tensor", "--per-channel"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--per-channel and --per-tensor exclude each other" in err[0]
    assert not list(tmp_path.rglob("*-int8.onnx"))  # nothing quantized
