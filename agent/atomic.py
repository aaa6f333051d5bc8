"""The one atomic file write: into ``NAME.tmp`` beside the file, flush, fsync,
rename over the file. A reader sees the old file or the new one, never half
of one; a failure (a full disk, a value json cannot encode) removes the
``.tmp`` and leaves the old file as it was. An ``OSError`` is raised again
naming the file, not its ``.tmp`` ("No space left on device: result.json").

A bottom module: imports nothing of the agent's (the controller uses it too).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def tmp_path(path: Path, unique: bool = False) -> Path:
    """Where ``path`` is written before its rename. ``unique``: one per process,
    for a file that several processes may write at once (a shared cache)."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp" if unique else f"{path.name}.tmp")


@contextlib.contextmanager
def replacing(
    path: str | Path, mode: str = "w", *, perm: int | None = None, unique: bool = False
) -> Iterator[IO]:
    """``with replacing(path) as f: f.write(...)``: the file ``path`` becomes
    what the block wrote, at once, when the block ends without an exception;
    ``perm`` sets its mode bits first."""
    path = Path(path)
    tmp = tmp_path(path, unique)
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if perm is not None:
            os.chmod(tmp, perm)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno:
            # OSError(errno, ...) is the errno's own subclass (FileNotFoundError...)
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def write_text(path: str | Path, text: str, *, perm: int | None = None, unique: bool = False) -> None:
    with replacing(path, perm=perm, unique=unique) as f:
        f.write(text)


def write_json(
    path: str | Path, data: Any, *, indent: int | None = None, default: Any = None, unique: bool = False
) -> None:
    with replacing(path, unique=unique) as f:
        json.dump(data, f, indent=indent, default=default)


def fsync_dir(path: str | Path) -> None:
    """fsync a directory, so a rename into it survives a power cut; a
    directory that cannot be opened is left alone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
