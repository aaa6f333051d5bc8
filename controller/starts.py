"""``bench --start cold|warm|both``: the same bench without and with the
runtime's cache (agent/runtimes/cache.py), on one agent connection so the
warm run finds what the cold one left. Each start is its own run, stored and
labelled ``start=cold|warm``; ``both`` prints a comparison of init time and
first inference by cache state."""

from __future__ import annotations

import argparse
import sys

from controller.commands.common import (
    agent_name,
    connect,
    interrupted,
    push_inputs,
    push_model,
    raise_bad_input,
    wait_result,
)
from controller.report.terminal import num

MODES = ("cold", "warm", "both")


def run_starts(args: argparse.Namespace) -> tuple[list[dict], str]:
    """The cold then the warm run (``--start both``); (results, agent name).
    Bad input raises BadInput before anything is stored."""
    from controller.runopts import spec_from_args

    results: list[dict] = []
    quiet = bool(getattr(args, "quiet", False))
    with connect(args) as client:
        sha, name = push_model(client, args.model)
        inputs = push_inputs(client, args)
        for mode in ("cold", "warm"):
            ns = argparse.Namespace(**{**vars(args), "start": mode})
            spec = spec_from_args(ns, "bench", sha, name, inputs_sha=inputs)
            spec.labels.setdefault("start", mode)
            run_id = client.start_run(spec)
            if not quiet:
                print(f"run {run_id} ({mode} start) on {client.addr}", file=sys.stderr)
            try:
                result = wait_result(client, run_id, quiet, spec.warmup_s + spec.duration_s)
            except KeyboardInterrupt:
                interrupted(client, run_id, args)
                raise
            raise_bad_input(result)
            results.append(result)
        agent = agent_name(client)
    return results, agent


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
