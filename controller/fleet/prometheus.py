"""Prometheus file_sd targets for the fleet's agents' /metrics.

One group per board, so each series carries the board's name and inventory
labels (the Grafana dashboard's ``board`` variable reads ``board``). A
board's /metrics address is its inventory ``metrics: HOST:PORT`` (the agent's
``--metrics-port``); the gRPC address says nothing about it, so a board
without one is left out and named."""

from __future__ import annotations

import re
import sys

from controller.fleet.inventory import Board

_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def file_sd(boards: list[Board]) -> list[dict]:
    groups = []
    missing = []
    for b in boards:
        if not b.metrics:
            missing.append(b.name)
            continue
        labels = {f"edgebench_{_LABEL.sub('_', k)}": str(v) for k, v in sorted(b.labels.items())}
        labels.update(board=b.name, edgebench_address=b.address)
        if b.profile:
            labels["edgebench_profile"] = b.profile
        groups.append({"targets": [b.metrics], "labels": labels})
    if missing:
        print(f"no metrics address (inventory 'metrics:') for: {', '.join(missing)}", file=sys.stderr)
    return groups
