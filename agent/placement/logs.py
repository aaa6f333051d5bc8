"""Delegate and runtime log lines: capture them from fd 2 and parse them.

Runtimes and vendor delegates log from C++ straight to fd 2, so Python's
sys.stderr cannot see them. ``capture_stderr`` swaps fd 2 for a temp file for
the duration of a load, then writes what it caught back to the real fd 2 (in
a worker that is ``stderr.log``), so the log stays complete and the parser
gets the text.

Line formats (as the libraries print them):
- TFLite core, every delegate: ``Replacing N node(s) with delegate (NAME) node,
  yielding K partitions.`` (newer: ``Replacing N out of M node(s) ... yielding K
  partitions for the whole graph.`` / ``... for subgraph S.``)
- NXP VX delegate: ``Fallback unsupported op OP to TfLite`` (OP is a name or a
  builtin code number)
- TI TIDL delegate: ``Number of subgraphs:N , X nodes delegated out of Y nodes``
- ORT verbose (session log level 0): ``Node placements`` followed by
  `` Node(s) placed on [PROVIDER]. Number of nodes: N`` and ``  OP (NAME)`` lines.
- ORT, any level: an EP that fails to create logs ``[E:onnxruntime...] ...
  [ERROR] <why>`` then ``Failed to create <Provider>.``; ORT goes on without it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Captured:
    text: str = ""


@contextmanager
def capture_stderr() -> Iterator[Captured]:
    out = Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            data = tmp.read()
            if data:
                os.write(2, data)  # tee back: stderr.log stays the full record
            out.text = data.decode("utf-8", "replace")


_REPLACING = re.compile(
    r"Replacing (?P<n>\d+)(?: out of (?P<m>\d+))? node\(s\) with delegate \((?P<name>[^)]*)\) node, "
    r"yielding (?P<k>\d+) partitions?"
)
_VX_FALLBACK = re.compile(r"Fallback unsupported op (?P<op>\S+)\s+to TfLite", re.IGNORECASE)
_TIDL = re.compile(
    r"Number of subgraphs\s*:\s*(?P<n>\d+)\s*,\s*(?P<x>\d+) nodes delegated out of (?P<y>\d+) nodes"
)
_ORT_PLACED = re.compile(
    r"(?:All nodes|Node\(s\)) placed on \[(?P<ep>[^\]]+)\]\. Number of nodes: (?P<n>\d+)"
)
_ORT_NODE = re.compile(r"\]\s{2,}(?P<op>\S+) \((?P<name>.*)\)\s*$")


def parse_tflite_delegate(text: str) -> list[dict]:
    """Each TFLite ``Replacing ... with delegate`` line: delegated nodes, total, partitions."""
    out = []
    for m in _REPLACING.finditer(text):
        out.append(
            {
                "delegate": m.group("name"),
                "delegated_nodes": int(m.group("n")),
                "total_nodes": int(m.group("m")) if m.group("m") else None,
                "partitions": int(m.group("k")),
            }
        )
    return out


def _op_name(op: str) -> str:
    """VX logs some ops by builtin code: map the number to its name when we can."""
    if not op.isdigit():
        return op
    try:
        from ai_edge_litert.schema_py_generated import BuiltinOperator
    except ImportError:
        try:
            from tflite_runtime.schema_py_generated import BuiltinOperator  # type: ignore[no-redef]
        except ImportError:
            return op
    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    return names.get(int(op), op)


def parse_vx(text: str) -> dict:
    """NXP VX delegate: the ops it sent back to the CPU, plus the partition line."""
    fallback = [_op_name(m.group("op")) for m in _VX_FALLBACK.finditer(text)]
    rep = [
        r
        for r in parse_tflite_delegate(text)
        if "vx" in r["delegate"].lower() or "vsi" in r["delegate"].lower()
    ]
    out: dict = {"delegate": "vx", "fallback_ops": fallback}
    if rep:
        out.update({k: rep[-1][k] for k in ("delegated_nodes", "total_nodes", "partitions")})
    return out


def parse_tidl(text: str) -> dict | None:
    found = list(_TIDL.finditer(text))
    if not found:
        return None
    m = found[-1]
    x, y = int(m.group("x")), int(m.group("y"))
    return {
        "delegate": "tidl",
        "partitions": int(m.group("n")),
        "delegated_nodes": x,
        "total_nodes": y,
        "cpu_nodes": y - x,
    }


def parse_ort_placements(text: str) -> dict[str, dict]:
    """ORT's verbose ``Node placements`` block -> {provider: {count, nodes: [(op_type, name)]}}.
    Fused EP nodes appear once, under their subgraph name; when every node is on
    one provider ORT prints only ``All nodes placed on [P]. Number of nodes: N``."""
    out: dict[str, dict] = {}
    current: str | None = None
    in_block = False
    for line in text.splitlines():
        if "Node placements" in line:
            in_block, current = True, None
            out.clear()  # keep the last block: one per session
            continue
        if not in_block:
            continue
        m = _ORT_PLACED.search(line)
        if m:
            current = m.group("ep")
            out[current] = {"count": int(m.group("n")), "nodes": []}
            continue
        m = _ORT_NODE.search(line)
        if m and current and "VerifyEachNodeIsAssignedToAnEp" in line:
            out[current]["nodes"].append((m.group("op"), m.group("name")))
            continue
        if current is not None:
            in_block = False
    return out


_ORT_EP_FAILED = re.compile(r"Failed to create (?P<ep>\w+ExecutionProvider)")
_ORT_ERROR = re.compile(r"\[E:onnxruntime[^\]]*\]\s*(?P<msg>.*)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_ort_ep_errors(text: str) -> dict[str, str]:
    """Why ORT dropped a provider at session creation: ``{provider: message}``
    from its ``[E:onnxruntime...] ... [ERROR] <why>`` line followed by ``Failed
    to create <Provider>. Please refer ...`` (the EP is then silently left out)."""
    out: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        m = _ORT_ERROR.search(line)
        if m:
            msg = _ANSI.sub("", m.group("msg"))
            last = msg.rsplit("[ERROR] ", 1)[-1].strip()[:300]
            continue
        m = _ORT_EP_FAILED.search(line)
        if m:
            out[m.group("ep")] = last
            last = ""
    return out


def parse_delegate_logs(text: str) -> dict:
    """Everything we recognise in a LiteRT worker's log, for the cross-check."""
    out: dict = {}
    rep = parse_tflite_delegate(text)
    if rep:
        out["tflite"] = rep
    if _VX_FALLBACK.search(text) or any("vx" in r["delegate"].lower() for r in rep):
        out["vx"] = parse_vx(text)
    tidl = parse_tidl(text)
    if tidl:
        out["tidl"] = tidl
    return out
