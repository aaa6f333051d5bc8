"""A pipeline result as terminal text: the headline, one bar per stage (its
share of the frame budget), misses by the stage that overran, each model
alone beside the application, and the streams' rates and slowdown."""

from __future__ import annotations

from typing import Any

from controller.report.cells import num

BAR = 30  # characters for a whole frame budget


def bar(share: float | None, width: int = BAR) -> str:
    if share is None:
        return " " * width
    n = max(0, min(width, int(round(share * width))))
    over = share > 1
    return ("#" * n).ljust(width) + ("!" if over else " ")


def render(result: dict[str, Any]) -> str:
    p = result.get("pipeline") or {}
    lines = [f"pipeline {p.get('name', '?')}: {result.get('status')}  run {result.get('run_id', '')}"]
    if result.get("error"):
        lines.append(f"error: {result['error']}")
    if not p:
        return "\n".join(lines)
    lines.append(p.get("headline", ""))
    budget = p.get("frame_budget_ms")
    svc, lat = p.get("service_ms") or {}, p.get("latency_ms") or {}
    lines.append(
        f"frame budget {num(budget, '.1f')} ms; frame p50 {num(svc.get('p50'), '.2f')} ms, "
        f"end to end p99 {num(lat.get('p99'), '.2f')} ms; "
        f"pipeline overhead {num((p.get('overhead_ms') or {}).get('mean'), '.3f')} ms a frame "
        f"({num(_pct(p.get('overhead_share')), '.2f')}% of it)"
    )
    lines.append(
        f"{'stage':<18} {'kind':<10} {'p50 ms':>8} {'p99 ms':>8} {'items':>6}  share of the frame budget"
    )
    for st in p.get("stages") or []:
        share = st.get("budget_share")
        lines.append(
            f"{st['index']:>2} {st['name'][:15]:<15} {st['kind']:<10} {num(st.get('p50_ms'), '8.2f')} "
            f"{num(st.get('p99_ms'), '8.2f')} {num(st.get('items_per_frame'), '6.1f')}  "
            f"{bar(share)} {num(_pct(share), '.1f')}%"
        )
    m = p.get("misses") or {}
    load = result.get("load") or {}
    if load:
        by = ", ".join(f"{k} {v}" for k, v in (m.get("by_stage") or {}).items()) or "none"
        lines.append(
            f"frames {load.get('frames')}, late {m.get('late')}, dropped {m.get('dropped')} "
            f"(achieved {num(p.get('achieved_rate_hz'), '.1f')} of {num(load.get('rate_hz'), '.1f')} FPS); "
            f"misses by stage: {by}"
        )
    for mod in p.get("models") or []:
        lines.append(
            f"model {mod.get('model')} ({mod.get('stage')}) alone: "
            f"{num(mod.get('calls_per_s'), '.1f')} calls/s "
            f"at batch {mod.get('batch', '-')}"
        )
    streams = p.get("streams") or []
    if len(streams) > 1:
        for s in streams:
            p50 = (s.get("service_ms") or {}).get("p50")
            lines.append(
                f"stream {s['pipeline']}#{s['stream']}: {num(s.get('achieved_rate_hz'), '.1f')} FPS, "
                f"frame p50 {num(p50, '.2f')} ms, slowdown x{num(s.get('slowdown'), '.2f')}"
            )
    return "\n".join(line for line in lines if line)


def _pct(x: float | None) -> float | None:
    return 100 * x if isinstance(x, (int, float)) else None
