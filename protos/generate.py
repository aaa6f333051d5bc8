"""Regenerate the committed gRPC stubs from protos/ (``make protos``).

protoc writes absolute imports (``from edgebench.v1 import agent_pb2``); the
stubs live inside the ``agent.rpc`` package, so the import is rewritten to a
package-qualified one. ``--check`` compares a fresh generation with the
committed files and fails when they differ.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
OUT_DIR = ROOT / "agent" / "rpc"
PROTOS = ["edgebench/v1/agent.proto"]


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc  # dev dependency only

    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(PROTO_DIR / p) for p in PROTOS],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    files = sorted(p for p in (out / "edgebench").rglob("*") if p.suffix in (".py", ".pyi"))
    for f in files:
        text = f.read_text()
        text = text.replace("from edgebench.v1 import", "from agent.rpc.edgebench.v1 import")
        f.write_text(text)
    for pkg in {out / "edgebench", *(f.parent for f in files)}:
        (pkg / "__init__.py").touch()
    return files


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    ns = ap.parse_args()
    if not ns.check:
        generate(OUT_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = []
        for f in fresh:
            rel = f.relative_to(tmp)
            committed = OUT_DIR / rel
            old = committed.read_text() if committed.exists() else ""
            if old != f.read_text():
                stale.append(str(rel))
                sys.stderr.writelines(
                    difflib.unified_diff(
                        old.splitlines(True), f.read_text().splitlines(True), str(committed), "fresh"
                    )
                )
        if stale:
            print(f"stale gRPC stubs: {', '.join(stale)}; run 'make protos'", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
