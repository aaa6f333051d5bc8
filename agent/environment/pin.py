"""``--pin-clocks``: performance governors (and, on a Jetson, the clocks
locked as ``jetson_clocks`` does: minimum = maximum) for one run, and the
previous state put back afterwards.

The previous values are journalled to ``STATE/pinned-clocks.json`` (written
and fsynced) before the first write, and the journal is removed only once
they are restored. The agent restores in the run's own ending; should the
agent itself die mid-run, ``restore`` at the next agent start reads the
journal and puts the board back. A worker killed by SIGKILL changes nothing:
the agent, not the worker, holds the pins.

Every write goes through the root path (``--sysfs-root``), so tests pin and
restore writable copies of the fixture trees.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from agent.environment.probe import cpu_policies, devfreq_devices
from agent.errors import one_line
from agent.profiles import Profile
from agent.rootfs import RootFS

log = logging.getLogger("edgebench.agent.pin")

JOURNAL = "pinned-clocks.json"
PERFORMANCE = "performance"


def _write(root: RootFS, board_path: str, value: str) -> str | None:
    """Write one sysfs value; the error as one line, None when it took."""
    try:
        with open(root.path(board_path), "w") as f:
            f.write(value + "\n")
        return None
    except OSError as exc:
        return f"{board_path}: {exc.strerror or one_line(exc)}"


def _offers(root: RootFS, path: str, governor: str) -> bool:
    """The governor is in the available list (a missing list: try it)."""
    avail = root.read_text(path)
    return avail is None or governor in avail.split()


def plan(root: RootFS, profile: Profile | None) -> list[dict[str, str]]:
    """[{name, path, to}]: the writes that pin this board, in order."""
    jetson = profile is not None and profile.family == "jetson"
    writes: list[dict[str, str]] = []
    for name, p in cpu_policies(root).items():
        pp = p["path"]
        if p["governor"] is not None and _offers(root, f"{pp}/scaling_available_governors", PERFORMANCE):
            writes.append({"name": f"{name}.governor", "path": f"{pp}/scaling_governor", "to": PERFORMANCE})
        if jetson and p["max_khz"] is not None and p["min_khz"] is not None:
            floor = {"name": f"{name}.min_khz", "path": f"{pp}/scaling_min_freq", "to": str(p["max_khz"])}
            writes.append(floor)
    for domain, d in devfreq_devices(root, profile).items():
        dp = d["path"]
        if jetson and d["max_hz"] is not None and d["min_hz"] is not None:
            # jetson_clocks leaves the GPU's nvhost_podgov and raises its floor to the top
            writes.append({"name": f"{domain}.min_hz", "path": f"{dp}/min_freq", "to": str(d["max_hz"])})
        elif d["governor"] is not None and _offers(root, f"{dp}/available_governors", PERFORMANCE):
            writes.append({"name": f"{domain}.governor", "path": f"{dp}/governor", "to": PERFORMANCE})
    return writes


def _journal_write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def pin(root: RootFS, profile: Profile | None, state_dir: Path, run_id: str) -> dict[str, Any]:
    """Pin the clocks for a run: ``pinned_clocks{pinned[{name, path, from, to}], errors[]}``.
    The previous values reach the journal before anything is written."""
    writes = plan(root, profile)
    entries = [{**w, "from": root.read_text(w["path"])} for w in writes]
    entries = [e for e in entries if e["from"] is not None and e["from"] != e["to"]]
    doc: dict[str, Any] = {"pinned": [], "errors": [], "restored": False}
    if not entries:
        doc["restored"] = True  # nothing to put back
        if not writes:
            doc["errors"].append("no CPU or devfreq governor found to pin under the root path")
        return doc
    _journal_write(Path(state_dir) / JOURNAL, {"run_id": run_id, "root": str(root.root), "entries": entries})
    for e in entries:
        err = _write(root, e["path"], e["to"])
        if err is None:
            doc["pinned"].append(e)
        else:
            doc["errors"].append(err)
    log.info("run %s: pinned %d clock setting(s)", run_id, len(doc["pinned"]))
    return doc


def restore(root: RootFS, state_dir: Path) -> dict[str, Any] | None:
    """Put back what the journal holds (reverse order) and remove it; None
    when there is no journal. A value that cannot be written back keeps the
    journal, so the next start tries again."""
    path = Path(state_dir) / JOURNAL
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("cannot read %s: %s", path, one_line(exc))
        return {"run_id": None, "restored": [], "errors": [f"{path}: {one_line(exc)}"]}
    errors: list[str] = []
    restored: list[str] = []
    for e in reversed(doc.get("entries") or []):
        err = _write(root, str(e["path"]), str(e["from"]))
        if err is None:
            restored.append(str(e["name"]))
        else:
            errors.append(err)
    if not errors:
        path.unlink(missing_ok=True)
    else:
        log.error("run %s: clocks not fully restored: %s", doc.get("run_id"), "; ".join(errors))
    return {"run_id": doc.get("run_id"), "restored": restored, "errors": errors}
