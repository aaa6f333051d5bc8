"""Hardware behind a root path (``--sysfs-root``), in the spirit of
node_exporter's ``--path.sysfs``. ROOT stands for ``/``; every read of the
board's files goes through here so fixture trees can stand in for real boards.

A missing or unreadable file is ``None``, never an exception: sensors go
offline (Jetson zones that read -256 or raise EINVAL) and that is normal.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path


class RootFS:
    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RootFS({str(self.root)!r})"

    def path(self, p: str) -> Path:
        """Map an absolute board path (``/sys/...``) under the root."""
        return self.root / p.lstrip("/")

    def exists(self, p: str) -> bool:
        return self.path(p).exists()

    def read_bytes(self, p: str) -> bytes | None:
        try:
            with open(self.path(p), "rb") as f:
                return f.read()
        except OSError:  # ENOENT, EACCES, EINVAL (offline Jetson zones), EIO...
            return None

    def read_text(self, p: str) -> str | None:
        """Stripped text, NULs removed (device-tree strings are NUL-terminated)."""
        data = self.read_bytes(p)
        if data is None:
            return None
        return data.replace(b"\x00", b"\n").decode("utf-8", "replace").strip()

    def read_int(self, p: str) -> int | None:
        text = self.read_text(p)
        if text is None:
            return None
        try:
            return int(text.split()[0])
        except (ValueError, IndexError):
            return None

    def glob(self, pattern: str) -> list[str]:
        """Board paths (root stripped) matching an absolute glob pattern, sorted."""
        base = str(self.root).rstrip("/")
        hits = glob.glob(str(self.path(pattern)))
        return sorted("/" + os.path.relpath(h, base) if base else h for h in hits)

    def realpath(self, p: str) -> str:
        """Resolve symlinks inside the root (sysfs is mostly symlinks) and return a board path."""
        real = os.path.realpath(self.path(p))
        base = os.path.realpath(self.root)
        rel = os.path.relpath(real, base)
        return "/" if rel == "." else "/" + rel
