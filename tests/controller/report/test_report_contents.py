"""What the HTML, Markdown and terminal reports say, and that they agree with
the result: the full latency table and distribution, the placement fallback's
reason, a failed gate beside a completed status, and a validate run's figures."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
from scenario.synthetic import T0

from agent.runs import series as run_series
from agent.stats import latency_summary_ms
from controller.report import markdown, terminal
from controller.report.html import render_html

REASON = "CUDAExecutionProvider requested but not in this build (available: CPUExecutionProvider)"


class Page(HTMLParser):
    """The page as a reader sees it: text per section, images, classed spans."""

    def __init__(self, html: str):
        super().__init__()
        self.imgs: list[dict] = []
        self.sections: dict[str, list[str]] = {}
        self.spans: list[tuple[str, str]] = []
        self._h2 = False
        self._section = "head"
        self._span: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        self._h2 = tag == "h2"
        if tag == "span":
            self._span = a.get("class")

    def handle_endtag(self, tag):
        if tag == "span":
            self._span = None

    def handle_data(self, data):
        if self._h2:
            self._section, self._h2 = data, False
        self.sections.setdefault(self._section, []).append(data)
        if self._span:
            self.spans.append((self._span, data))

    def text(self, section: str) -> str:
        return " ".join(self.sections.get(section, []))


def iterations(n: int = 4000, seed: int = 1) -> np.ndarray:
    """A measured phase with a slow tail: 90 % near 2 ms, 10 % near 6 ms."""
    rng = np.random.default_rng(seed)
    lat = np.where(rng.random(n) < 0.9, rng.normal(2e6, 1e5, n), rng.normal(6e6, 3e5, n)).astype(np.int64)
    starts = T0 + np.cumsum(np.full(n, 7_000_000, dtype=np.int64))
    return np.stack([starts, starts + lat, np.ones(n, dtype=np.int64)], axis=1)


def bench_result(it: np.ndarray, with_series: bool = True) -> dict:
    lat = latency_summary_ms(it[:, 1] - it[:, 0])
    doc = {
        "run_id": "20261123T200000000Z-abcdef",
        "kind": "bench",
        "status": "completed",
        "t0_ns": T0,
        "model": {"name": "m.onnx", "format": "onnx", "sha256": "a" * 64},
        "latency_ms": lat,
        "throughput_ips": 140.0,
        "iterations": int(it.shape[0]),
        "init_ms": 123.4,
        "first_inference_ms": 9.876,
        "gates": [],
    }
    if with_series:
        doc["series"] = run_series.build(T0, [], it, [])
    return doc


def test_html_bench_report_has_every_percentile_and_the_latency_distribution(tmp_path):
    it = iterations()
    result = bench_result(it)
    page = Page(render_html(result))
    table = page.text("Latency")
    lat = result["latency_ms"]
    for label, key in (("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("p99.9", "p999")):
        assert re.search(rf"\b{re.escape(label)}\s+{lat[key]:.3f}\b", table), (label, table)
    assert re.search(r"init \(model load\)\s+123\.4\b", table)
    assert re.search(r"first inference\s+9\.876\b", table)
    (img,) = [i for i in page.imgs if i["alt"].startswith("latency distribution")]
    assert f"{it.shape[0]} measured iterations" in table

    # the same figure from the run's iterations.npy alone (an older result): one path
    np.save(tmp_path / "iterations.npy", it)
    older = Page(render_html(bench_result(it, with_series=False), tmp_path))
    (again,) = [i for i in older.imgs if i["alt"].startswith("latency distribution")]
    png = base64.b64decode(img["src"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert again["src"] == img["src"]
    assert "built from the run's files" in older.text("Latency")


def test_a_result_without_latencies_has_no_latency_section():
    page = Page(render_html({"run_id": "x", "kind": "bench", "status": "failed", "error": "boom"}))
    assert "Latency" not in page.sections and page.imgs == []


def placement_result() -> dict:
    return {
        "run_id": "r-fb",
        "kind": "bench",
        "status": "completed",
        "placement": {
            "runtime": "onnxruntime",
            "total_nodes": 17,
            "nodes_by_device": {"CPU": 17},
            "accelerated_nodes": 0,
            "partitions": 0,
            "fallback": True,
            "fallback_nodes": [{"name": "conv1", "op_type": "Conv", "device": "CPU", "time_share": 0.5}],
            "cpu_time_share": 1.0,
            "dropped_providers": ["CUDAExecutionProvider"],
            "fallback_reasons": [REASON],
        },
        "gates": [{"name": "fallback", "passed": False, "message": "17 op(s) on CPU"}],
    }


def test_html_and_markdown_give_the_fallback_reason_the_terminal_gives():
    result = placement_result()
    assert f"why: {REASON}" in terminal.render(result)
    page = Page(render_html(result))
    assert REASON in page.text("Placement") and "CUDAExecutionProvider" in page.text("Placement")
    md = markdown.render(result)
    assert f"- why: {REASON}" in md and "- dropped providers: CUDAExecutionProvider" in md


def test_markdown_formats_device_counts_and_booleans():
    md = markdown.render(placement_result())
    assert "- nodes: 17 (CPU 17)" in md and "- fallback: **yes**" in md
    assert "{'" not in md and "True" not in md
    result = placement_result()
    result["placement"].update(fallback=False, nodes_by_device={"CUDA": 15, "CPU": 2})
    md = markdown.render(result)
    assert "- nodes: 17 (CPU 2, CUDA 15)" in md and "- fallback: no" in md and "False" not in md


def test_a_failed_gate_is_never_shown_as_a_plain_completed():
    result = placement_result()
    want = "completed — gate failed (fallback)"
    assert terminal.render(result).splitlines()[0].endswith(want)
    assert "\x1b[31m" in terminal.render(result, color=True).splitlines()[0]
    assert f"- status: **{want}**" in markdown.render(result)
    page = Page(render_html(result))
    assert ("bad", want) in page.spans and ("good", "completed") not in page.spans
    # the same run with its gate passed is plainly completed, in green
    result["gates"][0]["passed"] = True
    assert ("good", "completed") in Page(render_html(result)).spans
    assert "- status: **completed**\n" in markdown.render(result)
    assert terminal.render(result).splitlines()[0].endswith("completed")


def validate_result() -> dict:
    gate = {
        "name": "min_cosine",
        "passed": False,
        "message": "logits: cosine 0.9812 misses >= 0.999 (worst sample 3: 0.9812)",
        "output": "logits",
        "metric": "cosine",
        "value": 0.98123,
        "threshold": 0.999,
    }
    return {
        "run_id": "r-val",
        "kind": "validate",
        "status": "completed",
        "validation": {
            "samples": 8,
            "outputs": [
                {
                    "name": "logits",
                    "cosine": 0.98123,
                    "nmse": 0.0312,
                    "sqnr_db": 15.06,
                    "max_abs_err": 0.75,
                    "top1_agreement": 0.875,
                },
                {
                    "name": "mask",
                    "cosine": 0.99991,
                    "nmse": 1.2e-4,
                    "sqnr_db": 39.2,
                    "max_abs_err": 0.01,
                    "mask_iou": 0.964,
                },
            ],  # fmt: skip
            "gates": [gate],
            "passed": False,
        },
        "gates": [gate],
    }


def test_html_and_markdown_show_the_validation_figures_and_gates():
    result = validate_result()
    page = Page(render_html(result))
    text = page.text("Validation")
    assert "8 sample(s) on the device" in text and ("bad", "FAILED") in page.spans
    assert re.search(r"logits\s+0\.98123\s+0\.0312\s+15\.1\s+0\.75\s+0\.875", text), text
    assert re.search(r"mask\s+0\.99991\s+0\.00012\s+39\.2\s+0\.01\s+-\s+0\.964", text), text
    assert re.search(r"min_cosine\s+logits\s+0\.9812\s+0\.999\s+FAIL", text), text
    md = markdown.render(result)
    assert "## Validation" in md and "8 sample(s) on the device: **FAILED**" in md
    assert "| `logits` | 0.98123 | 0.0312 | 15.1 | 0.75 | 0.875 | - |" in md
    assert "| `mask` | 0.99991 | 0.00012 | 39.2 | 0.01 | - | 0.964 |" in md
