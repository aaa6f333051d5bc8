"""Placement gates: --fail-on-fallback, --max-cpu-ops N, --max-partitions N.
A failed gate keeps the run completed; the controller exits 3 for it."""

from __future__ import annotations

from agent.spec import RunSpec


def _ops(nodes: list[dict], limit: int = 5) -> str:
    names = [f"{n['name']} ({n['op_type']})" for n in nodes[:limit]]
    more = len(nodes) - limit
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _share(p: dict) -> str:
    s = p.get("cpu_time_share")
    return (
        f"{s * 100:.1f}% of inference time on CPU"
        if isinstance(s, (int, float))
        else "CPU time share unknown"
    )


def evaluate(result_part: dict, spec: RunSpec) -> list[dict]:
    """``[{name, passed, message}]`` for the placement gates the spec asks for."""
    p = result_part.get("placement")
    gates: list[dict] = []
    wanted = spec.fail_on_fallback or spec.max_cpu_ops is not None or spec.max_partitions is not None
    if not wanted:
        return gates
    if not p:
        return [{"name": "placement", "passed": False, "message": "no placement was recorded for this run"}]
    if spec.fail_on_fallback:
        if p.get("fallback"):
            fb = p.get("fallback_nodes") or []
            what = (
                f"CPU fallback: {_ops(fb)}; {_share(p)}" if fb else "; ".join(p.get("fallback_reasons") or [])
            )
            gates.append({"name": "fallback", "passed": False, "message": what or "fallback"})
        else:
            gates.append({"name": "fallback", "passed": True, "message": "no CPU fallback"})
    if spec.max_cpu_ops is not None:
        n = len(p.get("fallback_nodes") or [])
        gates.append(
            {
                "name": "max_cpu_ops",
                "passed": n <= spec.max_cpu_ops,
                "message": f"{n} op(s) fell back to CPU (limit {spec.max_cpu_ops})",
            }
        )
    if spec.max_partitions is not None:
        k = int(p.get("partitions") or 0)
        gates.append(
            {
                "name": "max_partitions",
                "passed": k <= spec.max_partitions,
                "message": f"graph cut into {k} accelerator partition(s) (limit {spec.max_partitions})",
            }
        )
    return gates
