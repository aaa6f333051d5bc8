"""The demo: a CNN built by our own code, benchmarked on an embedded agent,
the result shown, written under --out and stored in the DB."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def run_demo(
    out: str | Path = "edgebench-demo",
    db_url: str | None = None,
    duration_s: float = 8.0,
    warmup_s: float = 2.0,
) -> int:
    from agent.errors import BadInput
    from agent.spec import RunSpec
    from controller import extras
    from controller.client import AgentClient
    from controller.commands.common import exit_code_of, saved_line, wait_result
    from controller.embedded import EmbeddedAgent
    from controller.models.onnx_cnn import demo_cnn
    from controller.report.placement import use_color
    from controller.report.terminal import render

    if not extras.have("onnx"):  # the board-only install: onnxruntime runs models, onnx builds them
        raise BadInput(
            f"edgebench demo builds its CNN with onnx, which this install lacks: {extras.INSTALL_HINT}"
            " (or bench a model you have: edgebench bench MODEL.onnx)"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = demo_cnn(out / "demo_cnn.onnx")
    print(f"built {model} ({model.stat().st_size} bytes)", file=sys.stderr)
    with EmbeddedAgent(out / "agent-state") as emb, AgentClient(emb.address) as client:
        sha = client.push(model)
        spec = RunSpec(
            kind="bench",
            model_sha256=sha,
            model_name=model.name,
            warmup_s=warmup_s,
            duration_s=duration_s,
            min_iterations=10,
        )
        run_id = client.start_run(spec)
        print(f"run {run_id} on embedded agent {emb.address}", file=sys.stderr)
        result = wait_result(client, run_id, total_s=warmup_s + duration_s)
    path = out / f"{run_id}.json"
    path.write_text(json.dumps(result, indent=1))
    (out / "result.json").write_text(json.dumps(result, indent=1))
    stored = None
    if result.get("error_code") != "bad_input" and extras.have("sqlalchemy"):
        from controller.db import ResultsDB

        db = ResultsDB(db_url)
        try:
            db.store(result)
        finally:
            db.close()
        stored = db.engine.url.render_as_string(hide_password=True)
    print(render(result, color=use_color()))
    print(saved_line(result, str(path), stored), file=sys.stderr)
    return exit_code_of(result)
