"""A minimal reader of the ONNX protobuf wire format: the graph's nodes and
whether the file is whole. The agent must not depend on the ``onnx`` package
(boards ship only a runtime), and placement needs the original node list to
expand an EP's fused subgraphs into their member nodes; the portability guard
reads node attributes (an EPContext node's ``hardware_arch``).

Fields used (onnx.proto3): ModelProto.graph = 7; GraphProto.node = 1,
.input = 11, .initializer = 5; NodeProto.input = 1, .output = 2, .name = 3,
.op_type = 4, .attribute = 5; AttributeProto.name = 1, .i = 3, .s = 4;
ValueInfoProto.name = 1.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

# String attributes longer than this are left out of OnnxNode.attributes: the
# ones read here are short metadata, while an EPContext node's ep_cache_context
# can hold a whole engine that is not worth copying.
MAX_ATTRIBUTE_BYTES = 64 << 10


class Truncated(ValueError):
    pass


@dataclass
class OnnxNode:
    name: str
    op_type: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # name -> int (AttributeProto.i) or bytes (.s); only from read_nodes
    attributes: dict[str, int | bytes] = field(default_factory=dict)


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise Truncated("varint runs past the end")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: memoryview):  # noqa: ANN202 - generator of (field, wire type, value)
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        fno, wt = key >> 3, key & 7
        if fno == 0:
            raise ValueError("field number 0")
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            if pos + 8 > n:
                raise Truncated("fixed64 runs past the end")
            val, pos = None, pos + 8
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            if pos + ln > n:
                raise Truncated(f"field {fno} claims {ln} bytes, {n - pos} left")
            val, pos = buf[pos : pos + ln], pos + ln
        elif wt == 5:
            if pos + 4 > n:
                raise Truncated("fixed32 runs past the end")
            val, pos = None, pos + 4
        else:
            raise ValueError(f"bad wire type {wt}")
        yield fno, wt, val


def _node(buf: memoryview) -> OnnxNode:
    node = OnnxNode("", "")
    for fno, wt, val in _fields(buf):
        if wt != 2:
            continue
        if fno == 1:
            node.inputs.append(bytes(val).decode())
        elif fno == 2:
            node.outputs.append(bytes(val).decode())
        elif fno == 3:
            node.name = bytes(val).decode()
        elif fno == 4:
            node.op_type = bytes(val).decode()
    return node


def _attribute(buf: memoryview) -> tuple[str, int | bytes | None]:
    name, value = "", None
    for fno, wt, val in _fields(buf):
        if fno == 1 and wt == 2:
            name = bytes(val).decode()
        elif fno == 3 and wt == 0:
            value = val - (1 << 64) if val >= 1 << 63 else val  # int64 on the wire
        elif fno == 4 and wt == 2 and len(val) <= MAX_ATTRIBUTE_BYTES:
            value = bytes(val)
    return name, value


def _scan_nodes(data: memoryview, op_types: set[str] | None) -> list[OnnxNode]:
    graph = None
    for fno, wt, val in _fields(data):
        if fno == 7 and wt == 2:
            graph = val
    if graph is None:
        raise ValueError("no graph in the model")
    out = []
    for fno, wt, val in _fields(graph):
        if fno != 1 or wt != 2:
            continue
        node = _node(val)
        if op_types is not None and node.op_type not in op_types:
            continue
        for f2, w2, v2 in _fields(val):
            if f2 == 5 and w2 == 2:
                name, value = _attribute(v2)
                if name and value is not None:
                    node.attributes[name] = value
        out.append(node)
    return out


def read_nodes(path: Path, op_types: set[str] | None = None) -> list[OnnxNode]:
    """Top-level graph nodes (of ``op_types`` when given) with their int and
    string attributes. The file is memory-mapped: an EP-context model with an
    embedded engine can be hundreds of MiB, and only its small attributes are
    read. Raises Truncated / ValueError like read_graph."""
    with open(path, "rb") as f:
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise ValueError("empty file") from None
    try:
        return _scan_nodes(memoryview(mm), op_types)
    finally:
        try:
            mm.close()
        except BufferError:  # a view is still referenced: the mapping goes with it
            pass


def read_graph(path: Path) -> tuple[list[OnnxNode], list[str]]:
    """(nodes in file order, graph input names without initializers).
    Raises Truncated for a cut-off file and ValueError for non-protobuf bytes."""
    data = memoryview(Path(path).read_bytes())
    graph = None
    for fno, wt, val in _fields(data):
        if fno == 7 and wt == 2:
            graph = val
    if graph is None:
        raise ValueError("no graph in the model")
    nodes: list[OnnxNode] = []
    inputs: list[str] = []
    inits: set[str] = set()
    for fno, wt, val in _fields(graph):
        if wt != 2:
            continue
        if fno == 1:
            nodes.append(_node(val))
        elif fno == 11:
            for f2, w2, v2 in _fields(val):
                if f2 == 1 and w2 == 2:
                    inputs.append(bytes(v2).decode())
        elif fno == 5:
            for f2, w2, v2 in _fields(val):
                if f2 == 8 and w2 == 2:  # TensorProto.name
                    inits.add(bytes(v2).decode())
    for i, n in enumerate(nodes):
        if not n.name:  # ORT names unnamed nodes by op type and index; keep them distinct
            n.name = f"{n.op_type}_{i}"
    return nodes, [i for i in inputs if i not in inits]


def check_whole(path: Path) -> str | None:
    """None if the protobuf parses to the end, else why not (one line)."""
    try:
        read_graph(path)
    except Truncated as exc:
        return f"truncated ({exc})"
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not an ONNX protobuf ({exc})"
    return None
