"""Result JSON -> Markdown (for PR comments and wikis)."""

from __future__ import annotations

from controller.report.terminal import LAT_KEYS, num


def render(result: dict) -> str:
    m = result.get("model") or {}
    a = result.get("agent") or {}
    out = [
        f"# edgebench {result.get('kind', '')} `{result.get('run_id', '')}`",
        "",
        f"- status: **{result.get('status')}**" + (f" ({result['error']})" if result.get("error") else ""),
        f"- model: `{m.get('name')}` ({m.get('format')}, sha256 `{str(m.get('sha256', ''))[:12]}`)",
        f"- board: {a.get('board') or '-'} (profile `{a.get('profile') or '-'}`), host `{a.get('hostname') or '-'}`",  # noqa: E501
    ]
    if result.get("throughput_ips") is not None:
        out.append(
            f"- throughput: **{num(result.get('throughput_ips'), '.2f')} inf/s** over {result.get('iterations')} iterations"  # noqa: E501
        )
    lat = result.get("latency_ms")
    if lat:
        out += [
            "",
            "| " + " | ".join(LAT_KEYS) + " |",
            "|" + "---:|" * len(LAT_KEYS),
            "| " + " | ".join(num(lat.get(k)) for k in LAT_KEYS) + " |",
        ]
    pl = result.get("placement")
    if pl:
        out += [
            "",
            "## Placement",
            "",
            f"- nodes: {pl.get('total_nodes')} {pl.get('nodes_by_device')}",
            f"- fallback: **{pl.get('fallback')}**",
        ]
        for n in pl.get("fallback_nodes") or []:
            out.append(f"  - `{n.get('name')}` ({n.get('op_type')}) on {n.get('device')}")
    gates = result.get("gates") or []
    if gates:
        out += ["", "## Gates", "", "| gate | result | message |", "|---|---|---|"]
        for g in gates:
            out.append(
                f"| {g.get('name')} | {'pass' if g.get('passed') else '**FAIL**'} | {g.get('message') or ''} |"  # noqa: E501
            )
    return "\n".join(out) + "\n"
