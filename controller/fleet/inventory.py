"""The board inventory (boards.yaml): name, address, labels, auth, expected
profile. A bad inventory is refused (BadInput, exit 2) naming its line.

    boards:
      - name: orin-1
        address: 127.0.0.1:50551
        token_file: /path/token        # or tls_ca / tls_cert / tls_key
        labels: {enclosure: sealed-ip67, site: lab-2}
        profile: orin-nx               # optional: the profile the agent must report
        metrics: 127.0.0.1:9464        # optional: the agent's /metrics (prometheus-targets)
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.schema import SchemaError
from controller.fleet import yamlpos

_KEYS = {"name", "address", "token_file", "tls_ca", "tls_cert", "tls_key", "labels", "profile", "metrics"}
_PATHS = ("token_file", "tls_ca", "tls_cert", "tls_key")
# a board's keys as an agent.schema node: name, address and labels are checked
# below, in their own words
BOARD = {
    "fields": {k: (str if k in (*_PATHS, "profile", "metrics") else object, False) for k in sorted(_KEYS)}
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ADDR = re.compile(r"^(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")


@dataclass
class Board:
    name: str
    address: str
    labels: dict[str, str] = field(default_factory=dict)
    token_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    profile: str | None = None
    metrics: str | None = None

    def client(self, timeout: float = 10.0) -> Any:
        """An AgentClient for this board (its auth files)."""
        from controller.client import AgentClient

        return AgentClient(
            self.address, self.token_file, self.tls_ca, self.tls_cert, self.tls_key, timeout=timeout
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Board:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def load(path: str | Path) -> list[Board]:
    """Boards of an inventory file; BadInput naming the line of the first problem."""
    doc = yamlpos.load(path)
    base = Path(path).resolve().parent
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("boards"), list):
        raise doc.error((), "an inventory needs 'boards:', a list of boards")
    boards: list[Board] = []
    seen: dict[str, int] = {}
    for i, b in enumerate(data["boards"]):
        key = ("boards", i)
        if not isinstance(b, dict):
            raise doc.error(key, "a board is a mapping with name and address")
        doc.check(key, BOARD, lambda e, b=b: _board_problem(e, b))
        name = b.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise doc.error(
                (*key, "name"), f"board name must be letters, digits, '.', '_', '-': got {name!r}"
            )
        if name in seen:
            raise doc.error((*key, "name"), f"board {name!r} already defined on line {seen[name]}")
        seen[name] = doc.line((*key, "name"))
        addr = b.get("address")
        if not isinstance(addr, str) or not _ADDR.match(addr) or not 0 < int(_ADDR.match(addr)[2]) < 65536:
            raise doc.error((*key, "address"), f"board {name}: address must be HOST:PORT, got {addr!r}")
        labels = b.get("labels") or {}
        if not isinstance(labels, dict) or any(isinstance(v, (dict, list)) for v in labels.values()):
            raise doc.error((*key, "labels"), f"board {name}: labels must be a mapping of plain values")
        files: dict[str, str | None] = {}
        for k in _PATHS:
            v = b.get(k)
            files[k] = str(base / v) if v else None  # relative to the inventory file
        if (files["tls_cert"] or files["tls_key"]) and not files["tls_ca"]:
            raise doc.error(key, f"board {name}: tls_cert/tls_key need tls_ca")
        boards.append(
            Board(
                name=name,
                address=addr,
                labels={str(k): str(v) for k, v in labels.items()},
                profile=b.get("profile"),
                metrics=b.get("metrics"),
                **files,
            )
        )
    if not boards:
        raise doc.error(("boards",), "the inventory lists no boards")
    return boards


def _board_problem(e: SchemaError, b: dict[str, Any]) -> str:
    k = str(e.path[-1][1])
    if e.kind == "unknown":
        return f"unknown board key {k!r} (known: {', '.join(sorted(_KEYS))})"
    return f"board {b.get('name')}: {k} must be {'a path' if k in _PATHS else 'a string'}"
