"""``bench --start both``: the same bench without and with the runtime's
cache (agent/runtimes/cache.py), in one session so the warm run finds what
the cold one left. Each start is its own run, stored and labelled
``start=cold|warm``; the comparison shows init time and first inference by
cache state. (``--start cold`` or ``warm`` alone is one ordinary run.)"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from controller.report.cells import num


def run_starts(session: Any, args: argparse.Namespace) -> list[dict]:
    """The cold then the warm run of ``args`` through ``session``; their
    results. Bad input raises BadInput before anything is stored."""
    from controller import specs

    sha = session.push(args.model)
    inputs = session.push_optional(getattr(args, "inputs", None), "inputs")
    results = []
    for mode in ("cold", "warm"):
        ns = argparse.Namespace(**{**vars(args), "start": mode})
        spec = specs.build("bench", ns, sha, Path(args.model).name, inputs_sha=inputs)
        spec.labels = {**spec.labels, "start": mode}
        spec.validate()
        results.append(session.run(spec, quiet=bool(getattr(args, "quiet", False))))
    return results


def comparison(results: list[dict]) -> str:
    """One row per start: cache kind, hit, init and first inference."""
    rows = ["start  cache                 hit    init ms  first ms  throughput"]
    for r in results:
        st = r.get("start") or {}
        c = st.get("cache") or {}
        hit = {True: "hit", False: "miss", None: "n/a"}[c.get("hit")]
        init, first = num(r.get("init_ms"), ".1f"), num(r.get("first_inference_ms"), ".2f")
        mode, kind = st.get("mode") or "-", c.get("kind") or "none"
        ips = num(r.get("throughput_ips"), ".1f")
        rows.append(f"{mode:<6} {kind:<21} {hit:<5} {init:>9} {first:>9} {ips:>11}")
    return "\n".join(rows)


def verdict(results: list[dict]) -> dict:
    """validity{} over both starts: valid when each is."""
    bad = [
        f"{(r.get('start') or {}).get('mode')}: {'; '.join((r.get('validity') or {}).get('reasons') or [])}"
        for r in results
        if r.get("validity") and not r["validity"].get("valid")
    ]
    return {"valid": not bad, "reasons": bad}
