"""The portability guard: requirements declared at push or read from the
artifact (TensorRT EP cache name, EPContext ``hardware_arch``, a sidecar) are
checked against the board's fingerprint before a run exists.

Boards: fixture trees of two Jetson generations and two L4T releases:
xavier-nx (Xavier, sm_72, R35.5.0, TensorRT 8.5.2, 2 DLA cores in sysfs),
agx-orin (Orin, sm_87, R35.4.1, TensorRT 8.5.2) and orin-nano (Orin, sm_87,
R36.4.0, TensorRT 10.3.0.30, no DLA).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import pytest

from agent import onnx_proto, portability
from agent.errors import BadInput
from agent.fingerprint import collect_info
from agent.profiles import load_all
from agent.rootfs import RootFS
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from controller.cli import main
from controller.client import AgentClient

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
XAVIER, AGX_ORIN, ORIN_NANO = (FIXTURES / b for b in ("xavier-nx", "agx-orin", "orin-nano"))
TRT_CACHE = "TensorrtExecutionProvider_TRTKernel_graph_main_graph_14352354461411460244_0_0_fp16_sm{}.engine"
ORIN_NANO_ENGINE = ["sm=87", "tensorrt=10.3", "l4t=R36.4"]
REFUSED_ON_XAVIER = "built for sm_87 / TensorRT 10.3 / R36.4; this board is sm_72 / TensorRT 8.5.2 / R35.5.0"


@pytest.fixture(scope="module")
def infos() -> dict[str, dict]:
    return {p.name: collect_info(RootFS(p)) for p in (XAVIER, AGX_ORIN, ORIN_NANO, FIXTURES / "x86")}


def epcontext_model(path: Path, arch: str, attr: str = "hardware_arch") -> Path:
    """An ORT EP-context model as the TensorRT EP writes it: one com.microsoft
    EPContext node whose ep_cache_context holds the engine (here 100 KiB of
    filler, past what the reader copies)."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(
        "EPContext",
        ["x"],
        ["y"],
        name="TRTKernel_graph_main_0",
        domain="com.microsoft",
        embed_mode=1,
        ep_cache_context=b"\x7fENGINE" * (100 << 7),
        **{attr: arch},
        source="TensorrtExecutionProvider",
    )
    graph = helper.make_graph(
        [node],
        "ctx",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx.save(model, path)
    return path


# --- requirement syntax ---------------------------------------------------------------


def test_requirements_parse_to_one_normal_form():
    reqs = portability.parse_all(["sm=sm_87", "sm=8.7", "l4t=R36.4", "dla_cores >= 1", "tensorrt<=10.3"])
    assert [str(r) for r in reqs] == ["sm=87", "l4t=R36.4", "dla_cores>=1", "tensorrt<=10.3"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("cuda=12.6", "unknown key 'cuda'; known: dla_cores, jetpack, l4t, profile, sm, soc, tensorrt"),
        ("sm", "expected KEY=VALUE, KEY>=VALUE or KEY<=VALUE"),
        ("sm=ampere", "sm must be a compute capability"),
        ("tensorrt=ten", "tensorrt must be a version"),
        ("dla_cores>=one", "dla_cores must be a whole number"),
        ("profile>=orin-nx", "profile is a name; only profile=VALUE applies"),
    ],
)
def test_a_malformed_requirement_is_bad_input_naming_it(text, why):
    with pytest.raises(BadInput) as exc:
        portability.parse(text)
    assert why in str(exc.value) and repr(text) in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("req", "have", "ok"),
    [
        ("tensorrt=10.3", "10.3.0.30", True),  # versions match by prefix
        ("tensorrt=10.3", "10.30.1", False),  # ...of whole components
        ("tensorrt=10.3", "8.5.2", False),
        ("tensorrt>=8.6", "10.3.0.30", True),
        ("tensorrt<=8.5", "8.5.2", True),  # 8.5.x is 8.5 at the requirement's precision
        ("tensorrt<=8.5", "10.3.0.30", False),
        ("l4t=R36.4", "36.4.0", True),
        ("l4t>=R36", "35.5.0", False),
        ("jetpack=6.0", "6.0 DP", True),
        ("sm=87", 87, True),
        ("sm=87", 72, False),
        ("sm>=80", 87, True),
        ("dla_cores>=1", 0, False),
        ("dla_cores>=1", 2, True),
        ("profile=orin-nx", "orin-nano", False),
        ("soc=tegra234", "tegra234", True),
        ("sm=87", None, False),  # what the board cannot show is not met
    ],
)
def test_matching_rules(req, have, ok):
    assert portability.satisfied(portability.parse(req), have) is ok


# --- reading requirements from an artifact ---------------------------------------------------


def test_tensorrt_ep_cache_names_carry_the_sm():
    assert [str(r) for r in portability.from_name(TRT_CACHE.format(72))] == ["sm=72"]
    assert [str(r) for r in portability.from_name("TensorrtExecutionProvider_cache_sm110.timing")] == [
        "sm=110"
    ]
    # built with trt_engine_hw_compatible: any Ampere or newer GPU
    assert [str(r) for r in portability.from_name("TRTKernel_graph_0_0_sm80+.engine")] == ["sm>=80"]
    assert portability.from_name("resnet50.onnx") == []
    assert portability.from_name("small_model.engine") == []


def test_onnx_reader_returns_node_attributes_without_copying_the_engine_blob(tmp_path):
    path = epcontext_model(tmp_path / "ctx.onnx", "87")
    (node,) = onnx_proto.read_nodes(path, op_types={"EPContext"})
    assert node.op_type == "EPContext" and node.inputs == ["x"] and node.outputs == ["y"]
    assert node.attributes["hardware_arch"] == b"87"
    assert node.attributes["embed_mode"] == 1
    assert node.attributes["source"] == b"TensorrtExecutionProvider"
    assert "ep_cache_context" not in node.attributes  # 100 KiB: past MAX_ATTRIBUTE_BYTES
    assert onnx_proto.read_nodes(path, op_types={"Conv"}) == []


@pytest.mark.parametrize(("attr", "arch", "want"), [
    ("hardware_arch", "87", ["sm=87"]),
    ("hardware_architecture", "72", ["sm=72"]),  # the attribute's name before ORT 1.18
    ("hardware_arch", "80+", ["sm>=80"]),
    ("hardware_arch", "v73", []),  # another EP's architecture string is not an SM
])  # fmt: skip
def test_an_ep_context_model_says_which_sm_its_engine_needs(tmp_path, attr, arch, want):
    path = epcontext_model(tmp_path / "ctx.onnx", arch, attr)
    assert [str(r) for r in portability.from_artifact(path, path.name)] == want


def test_a_plain_onnx_model_needs_nothing(tiny_onnx_model):
    assert portability.from_artifact(tiny_onnx_model, tiny_onnx_model.name) == []


def test_a_sidecar_beside_an_engine_declares_its_requirements(tmp_path):
    engine = tmp_path / "yolo.engine"
    engine.write_bytes(b"not really an engine")
    assert portability.from_sidecar(engine) == []
    side = tmp_path / "yolo.engine.json"
    side.write_text(json.dumps({"builder": "trtexec", "requires": {"sm": 87, "tensorrt": "10.3",
                                                                    "dla_cores": ">=1"}}))  # fmt: skip
    assert [str(r) for r in portability.from_sidecar(engine)] == ["sm=87", "tensorrt=10.3", "dla_cores>=1"]
    side.write_text(json.dumps({"requires": {"cuda": "12.6"}}))
    with pytest.raises(BadInput, match=r"yolo\.engine\.json: requirement 'cuda=12.6': unknown key"):
        portability.from_sidecar(engine)
    side.write_text("{requires")
    with pytest.raises(BadInput, match=r"yolo\.engine\.json: not JSON"):
        portability.from_sidecar(engine)


# --- the board ----------------------------------------------------------------------


def test_fingerprint_carries_sm_dla_tensorrt_and_l4t_per_generation(infos):
    facts = {board: portability.board_facts(info) for board, info in infos.items()}
    assert facts["xavier-nx"] == {"sm": 72, "dla_cores": 2, "tensorrt": "8.5.2", "l4t": "35.5.0",
                                  "jetpack": "5.1.3", "profile": "xavier-nx", "soc": "tegra194"}  # fmt: skip
    assert facts["orin-nano"] == {"sm": 87, "dla_cores": 0, "tensorrt": "10.3.0.30", "l4t": "36.4.0",
                                  "jetpack": "6.1", "profile": "orin-nano", "soc": "tegra234"}  # fmt: skip
    assert facts["agx-orin"]["sm"] == 87 and facts["agx-orin"]["l4t"] == "35.4.1"
    # Xavier's DLAs are seen by the kernel; Orin Nano has none and its profile says so
    assert infos["xavier-nx"]["dla"] == {"cores": 2, "source": "sysfs"}
    assert infos["orin-nano"]["dla"] == {"cores": 0, "source": "profile"}
    assert infos["xavier-nx"]["gpu"] == {"sm": 72, "source": "profile"}
    assert infos["x86"]["gpu"] is None and infos["x86"]["dla"] is None


def test_the_dla_count_comes_from_sysfs_before_the_profile(tmp_path):
    root = tmp_path / "orin-nx-8gb"
    shutil.copytree(FIXTURES / "orin-nx", root, symlinks=True)
    assert collect_info(RootFS(root))["dla"] == {"cores": 2, "source": "profile"}
    # an 8GB Orin NX exposes one DLA (JetPack 6 host1x under bus@0)
    (root / "sys/devices/platform/bus@0/13e00000.host1x/15880000.nvdla0").mkdir(parents=True)
    assert collect_info(RootFS(root))["dla"] == {"cores": 1, "source": "sysfs"}


def test_every_jetson_profile_declares_its_sm_and_dla_cores():
    jetsons = [p for p in load_all() if p.family == "jetson"]
    assert {p.name: (p.gpu_sm, p.dla_cores) for p in jetsons} == {
        "agx-orin": (87, 2),
        "orin-nx": (87, 2),
        "orin-nano": (87, 0),
        "xavier-nx": (72, 2),
        "jetson-nano": (53, 0),
    }


def test_the_mismatch_line_names_each_difference_and_only_those(infos):
    reqs = portability.parse_all(ORIN_NANO_ENGINE)
    assert portability.mismatch(reqs, infos["xavier-nx"], "yolo.engine") == f"yolo.engine {REFUSED_ON_XAVIER}"
    # same Orin generation, older L4T: the SM is not a difference
    assert portability.mismatch(reqs, infos["agx-orin"], "yolo.engine") == (
        "yolo.engine built for TensorRT 10.3 / R36.4; this board is TensorRT 8.5.2 / R35.4.1"
    )
    assert portability.mismatch(reqs, infos["orin-nano"], "yolo.engine") is None
    more = portability.parse_all(["dla_cores>=1", "profile=orin-nx"])
    assert portability.mismatch(more, infos["orin-nano"], "m.onnx") == (
        "m.onnx built for DLA cores >= 1 / profile orin-nx; this board is 0 DLA cores / profile orin-nano"
    )
    assert portability.mismatch(reqs, infos["x86"], "m") == (
        "m built for sm_87 / TensorRT 10.3 / R36.4; this board is sm unknown / no TensorRT / no L4T"
    )


# --- the agent: refused before any load ---------------------------------------------------------------


def spy_on_executions(agent, monkeypatch) -> list:
    started = []
    real = agent.server.runs._execution

    def spy(run):
        started.append(run.rd.run_id)
        return real(run)

    monkeypatch.setattr(agent.server.runs, "_execution", spy)
    return started


def run_dirs(agent) -> list[Path]:
    return sorted((agent.state_dir / "runs").glob("*"))


BENCH = {"kind": "bench", "warmup_s": 0, "duration_s": 0.2, "min_iterations": 3, "placement": False,
         "telemetry": False}  # fmt: skip


def start(agent, sha: str, name: str) -> str:
    spec = {**BENCH, "model_sha256": sha, "model_name": name}
    return agent.stub.StartRun(pb.StartRunRequest(spec_json=json.dumps(spec))).run_id


def test_a_mismatched_artifact_is_refused_before_a_run_or_worker_exists(
    agent_factory, tiny_onnx_model, monkeypatch
):
    agent = agent_factory(sysfs_root=XAVIER)
    started = spy_on_executions(agent, monkeypatch)
    with AgentClient(agent.address) as client:
        sha = client.push(tiny_onnx_model, requires=ORIN_NANO_ENGINE)
    assert agent.server.store.requires(sha) == ORIN_NANO_ENGINE
    with pytest.raises(grpc.RpcError) as exc:
        start(agent, sha, "tiny.onnx")
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == f"tiny.onnx {REFUSED_ON_XAVIER}"
    assert run_dirs(agent) == [] and started == []
    assert list(agent.stub.ListRuns(pb.ListRunsRequest()).runs) == []


def test_the_matching_artifact_passes_the_guard_and_runs(agent_factory, tiny_onnx_model, monkeypatch):
    agent = agent_factory(sysfs_root=ORIN_NANO)
    started = spy_on_executions(agent, monkeypatch)
    with AgentClient(agent.address) as client:
        sha = client.push(tiny_onnx_model, requires=[*ORIN_NANO_ENGINE, "profile=orin-nano", "dla_cores<=0"])
    run_id = start(agent, sha, "tiny.onnx")
    assert agent.server.runs.wait(run_id, timeout=120) == "completed"
    assert started == [run_id]


def test_requirements_read_from_the_artifact_name_are_enforced(agent_factory, tiny_onnx_model, tmp_path):
    named = tmp_path / TRT_CACHE.format(72)  # a cache built on a Xavier
    shutil.copy(tiny_onnx_model, named)
    agent = agent_factory(sysfs_root=ORIN_NANO)
    with AgentClient(agent.address) as client:
        sha = client.push(named)
    assert agent.server.store.requires(sha) == []  # nothing declared: the agent reads the name
    with pytest.raises(grpc.RpcError) as exc:
        start(agent, sha, named.name)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == f"{named.name} built for sm_72; this board is sm_87"
    assert run_dirs(agent) == []


def test_an_ep_context_model_for_orin_is_refused_on_xavier(agent_factory, tmp_path):
    model = epcontext_model(tmp_path / "yolo_ctx.onnx", "87")
    agent = agent_factory(sysfs_root=XAVIER)
    with AgentClient(agent.address) as client:
        sha = client.push(model)
    with pytest.raises(grpc.RpcError) as exc:
        start(agent, sha, model.name)
    assert exc.value.details() == "yolo_ctx.onnx built for sm_87; this board is sm_72"
    assert run_dirs(agent) == []


def test_a_re_push_declaring_requirements_replaces_the_stored_ones(agent_factory, tiny_onnx_model):
    agent = agent_factory(sysfs_root=AGX_ORIN)
    with AgentClient(agent.address) as client:
        sha = client.push(tiny_onnx_model)
        assert agent.server.store.requires(sha) == []
        assert client.push(tiny_onnx_model, requires=["l4t>=R36"]) == sha  # present: no bytes, header only
        assert agent.server.store.requires(sha) == ["l4t>=R36"]
        client.push(tiny_onnx_model)  # declaring nothing keeps them
    assert agent.server.store.requires(sha) == ["l4t>=R36"]
    with pytest.raises(grpc.RpcError) as exc:
        start(agent, sha, "tiny.onnx")
    assert exc.value.details() == "tiny.onnx built for L4T >= R36; this board is R35.4.1"


def test_an_unknown_requirement_over_the_wire_is_invalid_argument(agent):
    with pytest.raises(grpc.RpcError) as exc:
        agent.stub.CheckArtifact(pb.CheckArtifactRequest(name="m.onnx", requires=["gpu=orin"]))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown key 'gpu'" in exc.value.details()


# --- the CLI: push --check, push --requires, bench ---------------------------------------------------


@pytest.fixture(autouse=True)
def controller_home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGEBENCH_DB", f"sqlite:///{tmp_path / 'results.db'}")


def test_push_check_answers_both_ways_without_storing_anything(
    agent_process, tiny_onnx_model, tmp_path, capsys
):
    orin = agent_process("--sysfs-root", str(ORIN_NANO), state_dir=tmp_path / "orin")
    xavier = agent_process("--sysfs-root", str(XAVIER), state_dir=tmp_path / "xavier")
    requires = [a for r in ORIN_NANO_ENGINE for a in ("--requires", r)]
    capsys.readouterr()

    assert main(["push", "--check", "--agent", orin.address, str(tiny_onnx_model), *requires]) == 0
    out = capsys.readouterr().out
    assert f"ok  {tiny_onnx_model}" in out and "sm=87" in out

    assert main(["push", "--check", "--agent", xavier.address, str(tiny_onnx_model), *requires]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"edgebench: error: tiny.onnx {REFUSED_ON_XAVIER}"]

    for ap in (orin, xavier):
        assert [p for p in (ap.state_dir / "artifacts").rglob("*") if p.is_file()] == []


def test_push_check_reads_the_sidecar_and_the_push_stores_it(agent_process, tmp_path, capsys):
    engine = tmp_path / "det.engine"
    engine.write_bytes(b"serialized engine built on an Orin Nano")
    (tmp_path / "det.engine.json").write_text(json.dumps({"requires": {"sm": 87, "tensorrt": "10.3"}}))
    xavier = agent_process("--sysfs-root", str(XAVIER))
    capsys.readouterr()
    assert main(["push", "--check", "--agent", xavier.address, str(engine)]) == 2
    assert capsys.readouterr().err.strip() == (
        "edgebench: error: det.engine built for sm_87 / TensorRT 10.3; this board is sm_72 / TensorRT 8.5.2"
    )
    assert main(["push", "--agent", xavier.address, str(engine)]) == 0
    sha = capsys.readouterr().out.split()[0]
    meta = json.loads((xavier.state_dir / "artifacts" / sha[:2] / f"{sha}.json").read_text())
    assert meta["name"] == "det.engine" and meta["requires"] == ["sm=87", "tensorrt=10.3"]
    # stored now: a check that declares nothing still knows
    assert main(["push", "--check", "--agent", xavier.address, str(engine)]) == 2


def test_push_with_an_unknown_requirement_key_exits_2_and_stores_nothing(
    agent_process, tiny_onnx_model, capsys
):
    ap = agent_process("--sysfs-root", str(ORIN_NANO))
    capsys.readouterr()
    assert main(["push", "--agent", ap.address, str(tiny_onnx_model), "--requires", "cuda=12.6"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'cuda'" in err[0]
    assert [p for p in (ap.state_dir / "artifacts").rglob("*") if p.is_file()] == []


def test_bench_of_a_mismatched_artifact_exits_2_and_stores_no_run(
    agent_process, tiny_onnx_model, tmp_path, capsys
):
    xavier = agent_process("--sysfs-root", str(XAVIER))
    requires = [a for r in ORIN_NANO_ENGINE for a in ("--requires", r)]
    assert main(["push", "--agent", xavier.address, str(tiny_onnx_model), *requires]) == 0
    capsys.readouterr()
    out = tmp_path / "r.json"
    rc = main(["bench", "--agent", xavier.address, str(tiny_onnx_model), "--duration", "0.2", "--quiet",
               "--json", str(out)])  # fmt: skip
    assert rc == 2
    assert REFUSED_ON_XAVIER in capsys.readouterr().err
    assert not out.exists()
    assert sorted((xavier.state_dir / "runs").glob("*")) == []
