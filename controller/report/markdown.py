"""Result JSON -> Markdown (for PR comments and wikis)."""

from __future__ import annotations

from agent.validity import verdict_line
from controller.report.terminal import LAT_KEYS, VALIDATION_COLUMNS, num, status_text, unsupported


def _yes_no(x: object) -> str:
    return "yes" if x else "no"


def render(result: dict) -> str:
    m = result.get("model") or {}
    a = result.get("agent") or {}
    status, ok = status_text(result)
    # a failure is marked, so a gate that failed never reads as a plain "completed"
    mark = "" if ok else " ❌"
    out = [
        f"# edgebench {result.get('kind', '')} `{result.get('run_id', '')}`",
        "",
        f"- status: **{status}**{mark}" + (f" ({result['error']})" if result.get("error") else ""),
        f"- model: `{m.get('name')}` ({m.get('format')}, sha256 `{str(m.get('sha256', ''))[:12]}`)",
        f"- board: {a.get('board') or '-'} (profile `{a.get('profile') or '-'}`), host `{a.get('hostname') or '-'}`",  # noqa: E501
    ]
    if result.get("throughput_ips") is not None:
        out.append(
            f"- throughput: **{num(result.get('throughput_ips'), '.2f')} inf/s** over {result.get('iterations')} iterations"  # noqa: E501
        )
    lat = result.get("latency_ms")
    ns = unsupported(result)
    if lat:
        out.append(
            f"- init {num(result.get('init_ms'), '.1f')} ms, first inference "
            f"{num(result.get('first_inference_ms'), '.3f')} ms"
        )
        out += [
            "",
            "| " + " | ".join(LAT_KEYS) + " |",
            "|" + "---:|" * len(LAT_KEYS),
            "| " + " | ".join("n/s" if k in ns else num(lat.get(k)) for k in LAT_KEYS) + " |",
        ]
        if ns:
            out.append(
                "\nn/s: not supported by this many queries (early stopping): "
                + ", ".join(f"{k} needs {n:,}" for k, n in ns.items())
            )
    pl = result.get("placement")
    if pl:
        by_dev = ", ".join(f"{d} {n}" for d, n in sorted((pl.get("nodes_by_device") or {}).items()))
        fb = bool(pl.get("fallback"))
        out += [
            "",
            "## Placement",
            "",
            f"- nodes: {pl.get('total_nodes')}" + (f" ({by_dev})" if by_dev else ""),
            f"- fallback: **{_yes_no(fb)}**" if fb else "- fallback: no",
        ]
        if pl.get("dropped_providers"):
            out.append(f"- dropped providers: {', '.join(map(str, pl['dropped_providers']))}")
        for r in pl.get("fallback_reasons") or []:
            out.append(f"- why: {r}")
        for n in pl.get("fallback_nodes") or []:
            out.append(f"  - `{n.get('name')}` ({n.get('op_type')}) on {n.get('device')}")
    val = result.get("validation")
    if val:
        out += ["", *_validation(val)]
    gates = result.get("gates") or []
    if gates:
        out += ["", "## Gates", "", "| gate | result | message |", "|---|---|---|"]
        for g in gates:
            out.append(
                f"| {g.get('name')} | {'pass' if g.get('passed') else '**FAIL**'} | {g.get('message') or ''} |"  # noqa: E501
            )
    v = result.get("validity")
    if v or result.get("warnings"):
        out += ["", "## Validity and environment", ""]
        out += [f"- warning: {w}" for w in result.get("warnings") or []]
        out += [f"- note: {n}" for n in (v or {}).get("notes") or []]
        if v:
            out.append(f"- **{verdict_line(v)}**")
    return "\n".join(out) + "\n"


def _validation(val: dict) -> list[str]:
    """Per-output figures against the reference (the columns some output has)."""
    outs = val.get("outputs") or []
    cols = [c for c in VALIDATION_COLUMNS if any(o.get(c[1]) is not None for o in outs)]
    verdict = (
        {True: "passed", False: "**FAILED**"}.get(val.get("passed"), "no gates")
        if val.get("gates")
        else "no gates"
    )
    lines = [
        "## Validation",
        "",
        f"- {val.get('samples')} sample(s) on the device: {verdict}",
        "",
        "| output | " + " | ".join(c[0] for c in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for o in outs:
        lines.append(f"| `{o.get('name')}` | " + " | ".join(num(o.get(k), f) for _, k, f in cols) + " |")
    return lines
