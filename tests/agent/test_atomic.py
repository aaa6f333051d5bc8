"""agent/atomic.py: the one atomic write. A full disk (ENOSPC from a write,
or from the fsync that reports a delayed allocation's failure) leaves the old
file whole and no .tmp behind, and the error names the file."""

from __future__ import annotations

import errno
import json
import os

import pytest

from agent import atomic


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullDisk:
    """A file object whose writes fail as on a full disk, after the first bytes."""

    def __init__(self, f):
        self.f = f

    def write(self, s):
        self.f.write(s[:3])
        _enospc()


def test_a_write_lands_whole_and_leaves_no_tmp(tmp_path):
    p = tmp_path / "state.json"
    atomic.write_json(p, {"status": "running"}, indent=1)
    atomic.write_json(p, {"status": "completed"})
    assert json.loads(p.read_text()) == {"status": "completed"}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["state.json"]


def test_a_full_disk_mid_write_keeps_the_old_file_and_removes_the_tmp(tmp_path):
    p = tmp_path / "result.json"
    p.write_text('{"old": true}')
    with pytest.raises(OSError) as ei:
        with atomic.replacing(p) as f:
            json.dump({"new": "x" * 1000}, _FullDisk(f))
    assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(p)
    assert "No space left on device" in str(ei.value) and "result.json" in str(ei.value)
    assert p.read_text() == '{"old": true}'
    assert sorted(x.name for x in tmp_path.iterdir()) == ["result.json"]


def test_a_failing_fsync_keeps_the_old_file_and_removes_the_tmp(tmp_path, monkeypatch):
    p = tmp_path / "power.json"
    p.write_text("old")
    monkeypatch.setattr(atomic.os, "fsync", _enospc)
    with pytest.raises(OSError) as ei:
        atomic.write_text(p, "new")
    assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(p)
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["power.json"]


def test_a_value_json_cannot_encode_leaves_nothing_behind(tmp_path):
    p = tmp_path / "spec.json"
    with pytest.raises(TypeError):
        atomic.write_json(p, {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_perm_and_a_per_process_tmp(tmp_path):
    p = tmp_path / "unit.service"
    atomic.write_text(p, "[Unit]\n", perm=0o640)
    assert p.read_text() == "[Unit]\n" and (p.stat().st_mode & 0o777) == 0o640
    assert atomic.tmp_path(p, unique=True).name == f"unit.service.{os.getpid()}.tmp"
    atomic.write_text(p, "[Service]\n", unique=True)
    assert [x.name for x in tmp_path.iterdir()] == ["unit.service"]
