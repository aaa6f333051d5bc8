"""A comparison (``controller.report.compare.compare``) as text: the table
both renderings print (``rows``), the terminal report (``render``) and the
Markdown one (``markdown``), and the speedup's one-line wording."""

from __future__ import annotations

from controller.pipeline import compare as pipeline_compare
from controller.report.cells import num
from controller.report.compare import is_number

_LABELS = {
    "total_nodes": "nodes",
    "accelerated_nodes": "accelerated",
    "partitions": "partitions",
    "cpu_time_share": "CPU time",
    "fallback": "fallback",
}
_MAX_LISTED = 20


def _cell(key: str, x: object) -> str:
    if key == "fallback":
        return "-" if x is None else ("yes" if x else "no")
    if key == "cpu_time_share":
        return f"{x * 100:.1f}%" if is_number(x) else "-"
    return str(x) if is_number(x) else "-"


def _listed(nodes: list[dict]) -> str:
    shown = ", ".join(f"{n['name']} ({n['op_type']}, {n['device']})" for n in nodes[:_MAX_LISTED])
    more = len(nodes) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _delta_pct(d: dict) -> str:
    return f"{d['pct']:+.1f}%" if d.get("pct") is not None else "-"


def _x(r: object) -> str:
    return f"{r:.3f}x" if is_number(r) else "-"


def _present(d: dict) -> bool:
    return d.get("a") is not None or d.get("b") is not None


def speedup_text(s: dict) -> str:
    """The speedup cell: ratio, interval and verdict."""
    if s.get("low") is None:
        return f"{_x(s.get('ratio'))} ({s['verdict']})"
    mark = " *" if s["significant"] else ""
    return f"{_x(s['ratio'])} [{s['low']:.3f}, {s['high']:.3f}] {s['verdict']}{mark}"


def method_text(s: dict) -> str:
    """How the interval was made: the reader must be able to redo it."""
    if s.get("low") is None:
        return "speedup = A p50 / B p50 from the stored summaries (no per-iteration latencies: no interval)"

    def src(x: str | None) -> str:
        return {"iterations": "exact latencies (iterations.npy)", "quantiles": "stored quantiles"}.get(
            str(x), "-"
        )

    return (
        f"speedup = median latency A / median latency B (>1: B faster); {s['level'] * 100:.0f}% CI: "
        f"percentile bootstrap, {s['resamples']} resamples (seed {s['seed']}), each run's n latencies "
        f"drawn from its inverse CDF (A: {src(s['source_a'])}, B: {src(s['source_b'])}; stored quantiles "
        f"are interpolated linearly), with {s['run_noise'] * 100:g}% run-to-run noise per run; "
        "* = significant: the interval excludes 1"
    )


def rows(c: dict) -> list[tuple[str, str, str, str, str]]:
    """The comparison table, (label, A, B, delta, change), shared by the text
    and Markdown renderings so the two always say the same."""

    def delta_row(label: str, d: dict, fmt: str = ".3f") -> tuple[str, str, str, str, str]:
        return (label, num(d["a"], fmt), num(d["b"], fmt), num(d["delta"], "+" + fmt), _delta_pct(d))

    out = []
    size = c.get("size_bytes") or {}
    if _present(size):
        ratio = f"{_x(size['ratio'])} (A/B)" if size.get("ratio") is not None else "-"
        out.append(("size (bytes)", num(size["a"], "d"), num(size["b"], "d"), "", ratio))
    s = c["speedup"]
    out.append(
        (
            "median latency ms",
            num(s.get("median_a_ms")),
            num(s.get("median_b_ms")),
            "",
            "speedup " + speedup_text(s),
        )
    )
    out.append(delta_row("throughput", c["throughput_ips"], ".2f"))
    out += [delta_row(f"latency {k}", v) for k, v in c["latency_ms"].items()]
    if _present(c.get("sustained_throughput_ips") or {}):
        out.append(delta_row("sustained ips", c["sustained_throughput_ips"], ".2f"))
    if _present(c.get("energy_per_inference_j") or {}):
        out.append(delta_row("energy J/inf", c["energy_per_inference_j"], ".6f"))
    for o in (c.get("accuracy") or {}).get("outputs") or []:
        out += [delta_row(f"{o['name']} {m}", d, ".4f") for m, d in o["metrics"].items()]
    return out + pipeline_compare.rows(c.get("pipeline"))


def _setup_line(tag: str, s: dict) -> str:
    rt = " ".join(str(x) for x in (s["runtime"], s["runtime_version"]) if x) or "-"
    via = ", ".join(s["providers"]) or (str(s["delegate"]) if s["delegate"] else "")
    return (
        f"{tag}  model {s['model'] or '-'} (sha256 {str(s['model_sha256'] or '-')[:12]})  "
        f"board {s['board'] or '-'} / profile {s['profile'] or '-'} / host {s['hostname'] or '-'}  "
        f"runtime {rt}{f' [{via}]' if via else ''}  accelerator {s['accelerator'] or '-'}"
    )


def render(c: dict) -> str:
    def row(r: tuple[str, str, str, str, str]) -> str:
        label, a, b, delta, change = r
        return f"{label:<18} {a:>10} {b:>10} {delta:>10} {change:>8}"

    lines = [f"A = {c['a']}   B = {c['b']}"]
    if c.get("setup"):
        lines += [_setup_line("A", c["setup"]["a"]), _setup_line("B", c["setup"]["b"])]
    lines += [f"warning: {w}" for w in c.get("warnings") or []]
    lines += [f"note: {n}" for n in c.get("notes") or []]
    lines.append(row(("", "A", "B", "delta", "")))
    lines += [row(r) for r in rows(c)]
    lines.append(method_text(c["speedup"]))
    if c.get("convention"):
        lines.append(c["convention"])
    acc = c.get("accuracy")
    if acc:
        pa, pb = acc["passed"]["a"], acc["passed"]["b"]
        lines.append(f"accuracy gates: A {_passed(pa)}, B {_passed(pb)}")
        lines += [f"  B failed: {g.get('message') or g.get('name')}" for g in acc["failed_gates_b"]]
    return "\n".join(lines + _placement_lines(c))


def _placement_lines(c: dict) -> list[str]:
    lines = []
    changed = set(c.get("placement_changes") or [])
    if c.get("placement"):
        lines.append(f"{'placement':<14} {'A':>10} {'B':>10}")
        for key, d in c["placement"].items():
            mark = "  changed" if key in changed else ""
            lines.append(f"  {_LABELS[key]:<12} {_cell(key, d['a']):>10} {_cell(key, d['b']):>10}{mark}")
    if c["moved"]:
        lines.append("ops that changed device:")
        lines += [f"  {m['name']}: {m['from']} -> {m['to']}" for m in c["moved"]]
    if c.get("removed_nodes"):
        lines.append("nodes only in A: " + _listed(c["removed_nodes"]))
    if c.get("added_nodes"):
        lines.append("nodes only in B: " + _listed(c["added_nodes"]))
    if c["new_fallback"]:
        lines.append("new CPU fallback in B: " + ", ".join(c["new_fallback"]))
    if c["fixed_fallback"]:
        lines.append("fallback gone in B: " + ", ".join(c["fixed_fallback"]))
    keys = ("moved", "removed_nodes", "added_nodes", "new_fallback", "fixed_fallback", "placement_changes")
    if not any(c.get(k) for k in keys):
        lines.append("placement unchanged")
    return lines


def markdown(c: dict) -> str:
    """The same comparison as ``render``, as Markdown (a job summary)."""

    def cell(x: str) -> str:
        return x.replace("|", "\\|") or " "

    lines = [f"## edgebench compare: A `{c['a']}` vs B `{c['b']}`", ""]
    if c.get("setup"):
        lines += [f"- {_setup_line('A', c['setup']['a'])}", f"- {_setup_line('B', c['setup']['b'])}"]
    lines += [f"- **warning:** {w}" for w in c.get("warnings") or []]
    lines += [f"- note: {n}" for n in c.get("notes") or []]
    lines += ["", "| metric | A | B | delta | change |", "| --- | ---: | ---: | ---: | --- |"]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows(c)]
    lines += ["", method_text(c["speedup"]) + ".", ""]
    if c.get("convention"):
        lines += [c["convention"][:1].upper() + c["convention"][1:] + ".", ""]
    acc = c.get("accuracy")
    if acc:
        lines.append(f"Accuracy gates: A {_passed(acc['passed']['a'])}, B {_passed(acc['passed']['b'])}.")
        lines += [f"- B failed: {g.get('message') or g.get('name')}" for g in acc["failed_gates_b"]]
        lines.append("")
    lines += ["### Placement", ""]
    lines += ["```", *_placement_lines(c), "```", ""]
    return "\n".join(lines)


def _passed(x: object) -> str:
    return "-" if x is None else ("passed" if x else "FAILED")
