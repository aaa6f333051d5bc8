"""`edgebench fleet status`: every board's state, asked concurrently, each
call bounded by a timeout. An unreachable board is a row with the reason,
never an error.

Temperature now: the agent's Prometheus /metrics (the inventory's
``metrics: HOST:PORT``) is read live; without it the agent's fingerprint
carries the temperatures it read when first asked (``temp_source`` says
which)."""

from __future__ import annotations

import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.errors import EdgebenchError, one_line
from controller.fleet.inventory import Board

_ZONE = re.compile(r'^edgebench_thermal_zone_celsius\{[^}]*zone="([^"]+)"[^}]*\}\s+(\S+)', re.M)


def board_status(b: Board, timeout_s: float = 5.0) -> dict[str, Any]:
    row: dict[str, Any] = {"board": b.name, "address": b.address, "labels": b.labels, "reachable": False}
    try:
        with b.client(timeout=timeout_s) as c:
            info = c.info()
            runs = c.list_runs(20)
    except EdgebenchError as exc:
        row["reason"] = one_line(exc)
        return row
    l4t = info.get("l4t") or {}
    rt = info.get("runtimes") or {}
    row.update(
        reachable=True,
        reason=None,
        hostname=info.get("hostname"),
        profile=info.get("profile"),
        expected_profile=b.profile,
        profile_ok=b.profile is None or b.profile == info.get("profile"),
        board_model=info.get("board"),
        soc=info.get("soc"),
        l4t=l4t.get("release"),
        jetpack=info.get("jetpack"),
        kernel=info.get("kernel"),
        runtimes={k: (v or {}).get("version") for k, v in rt.items() if isinstance(v, dict)},
        current_run=next((r["run_id"] for r in runs if r["status"] in ("queued", "running")), None),
    )
    temps, source = _metrics_temps(b, timeout_s)
    if temps is None:
        temps, source = ((info.get("telemetry") or {}).get("temps_c") or {}), "fingerprint"
    row["temps_c"] = temps
    row["temp_max_c"] = max(temps.values()) if temps else None
    row["temp_source"] = source
    return row


def _metrics_temps(b: Board, timeout_s: float) -> tuple[dict[str, float] | None, str]:
    if not b.metrics:
        return None, ""
    try:
        with urllib.request.urlopen(f"http://{b.metrics}/metrics", timeout=timeout_s) as r:  # noqa: S310 - inventory URL
            text = r.read().decode("utf-8", "replace")
    except OSError:
        return None, ""
    temps = {}
    for zone, v in _ZONE.findall(text):
        try:
            temps[zone] = float(v)
        except ValueError:
            continue
    return temps, "metrics"


def fleet_status(boards: list[Board], timeout_s: float = 5.0) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=min(32, len(boards))) as pool:
        return list(pool.map(lambda b: board_status(b, timeout_s), boards))


def render(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'board':<14} {'reach':<5} {'profile':<14} {'L4T/SDK':<12} {'runtimes':<34} "
        f"{'current run':<30} {'temp':>7}"
    )
    out = [head]
    for r in rows:
        if not r["reachable"]:
            out.append(f"{r['board']:<14} {'no':<5} {r.get('reason')}")
            continue
        prof = r["profile"] or "-"
        if not r["profile_ok"]:
            prof += f" (expected {r['expected_profile']})"
        sdk = (r["l4t"] and f"R{r['l4t']}" or r.get("kernel") or "-")[:12]
        rts = ", ".join(f"{k} {v}" for k, v in sorted(r["runtimes"].items())) or "-"
        t = f"{r['temp_max_c']:.1f} C" if r["temp_max_c"] is not None else "-"
        out.append(
            f"{r['board']:<14} {'yes':<5} {prof:<14} {sdk:<12} {rts[:34]:<34} "
            f"{r['current_run'] or '-':<30} {t:>7}"
            + (f"  labgrid: held by {r['labgrid_acquired']}" if r.get("labgrid_acquired") else "")
        )
    return "\n".join(out)
