"""``edgebench-agent install --systemd [--prefix /]``: lay down the unit, the
drop-in for the board family, the sysusers file and a default agent.yaml.

It writes files and prints each step; it starts nothing (an admin runs the
printed ``systemd-sysusers`` / ``systemctl`` lines). An existing agent.yaml
is kept: it is the admin's. The unit's ``ExecStart=`` points at the
``edgebench-agent`` of the Python running this command (a venv works).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import agent
from agent import atomic, profiles
from agent.errors import EXIT_OK, BadInput
from agent.rootfs import RootFS

UNIT = "edgebench-agent.service"
SYSUSERS = "edgebench.conf"
FAMILIES = ("jetson", "imx8mp", "am62a")
# the unit's ExecStart as shipped; replaced by the real path at install
SHIPPED_EXEC = "/usr/local/bin/edgebench-agent"

DEFAULT_YAML = """\
# edgebench agent options: every `edgebench-agent serve --OPTION` as `OPTION: value`
# (docs/deploy.md). The command line overrides this file. Secrets live in
# their own files, readable by the edgebench user only: name them here.
listen: "127.0.0.1:50551"
# state-dir: systemd's StateDirectory (/var/lib/edgebench-agent)
# token-file: /etc/edgebench/token
# tls-cert: /etc/edgebench/agent.crt
# tls-key: /etc/edgebench/agent.key
# tls-client-ca: /etc/edgebench/clients-ca.crt
# metrics-port: 9464
artifact-quota: 4G
upload-expiry: 24h
keep-runs: 500
keep-days: 90
log-level: info
"""


def units_dir() -> Path:
    """``systemd/`` of a source checkout, else the copy a wheel installs."""
    for cand in (
        Path(agent.__file__).resolve().parent.parent / "systemd",
        Path(sys.prefix) / "share" / "edgebench" / "systemd",
    ):
        if (cand / UNIT).is_file():
            return cand
    raise BadInput(
        "the systemd unit files are not installed with this edgebench (no share/edgebench/systemd)"
    )


def board_family(sysfs_root: str) -> str | None:
    """jetson / imx8mp / am62a from the hardware profile that matches, else None."""
    try:
        name = profiles.resolve(RootFS(sysfs_root), "auto").name
    except Exception:  # no profile matches: a generic box needs no drop-in
        return None
    if name.startswith(("jetson", "orin", "xavier", "agx")):
        return "jetson"
    return name if name in FAMILIES else None


def agent_executable() -> str:
    """The edgebench-agent next to this Python (a venv's), else on PATH."""
    here = Path(sys.executable).parent / "edgebench-agent"
    if here.is_file():
        return str(here)
    return shutil.which("edgebench-agent") or SHIPPED_EXEC


def _under(prefix: Path, path: str) -> Path:
    return prefix / path.lstrip("/")


def _write(dest: Path, text: str, mode: int, say: list[str]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(dest, text, perm=mode)
    say.append(f"wrote {dest}")


def install(prefix: str = "/", board: str = "auto", sysfs_root: str = "/") -> int:
    """Install under ``prefix``; prints what it did and what to run next."""
    root = Path(prefix)
    if not root.is_dir():
        raise BadInput(f"--prefix {prefix} is not a directory")
    if board not in ("auto", "none", *FAMILIES):
        raise BadInput(f"bad --board {board!r}: jetson, imx8mp, am62a, none or auto")
    family = board_family(sysfs_root) if board == "auto" else (None if board == "none" else board)
    src = units_dir()
    say: list[str] = []
    exe = agent_executable()
    unit = (src / UNIT).read_text().replace(SHIPPED_EXEC, exe)
    unit_dir = _under(root, "/etc/systemd/system")
    _write(unit_dir / UNIT, unit, 0o644, say)
    dropins = unit_dir / f"{UNIT}.d"
    for fam in FAMILIES:  # one board's drop-in only: a stale one would open another's devices
        stale = dropins / f"{fam}.conf"
        if fam != family and stale.exists():
            stale.unlink()
            say.append(f"removed {stale} (not this board)")
    if family:
        _write(dropins / f"{family}.conf", (src / f"{UNIT}.d" / f"{family}.conf").read_text(), 0o644, say)
    else:
        say.append("no board drop-in: no Jetson, i.MX8M Plus or AM62A profile matches (serial meters only)")
    _write(
        _under(root, "/etc/sysusers.d") / SYSUSERS, (src / "sysusers.d" / SYSUSERS).read_text(), 0o644, say
    )
    conf = _under(root, "/etc/edgebench/agent.yaml")
    if conf.exists():
        say.append(f"kept {conf} (exists)")
    else:
        _write(conf, DEFAULT_YAML, 0o644, say)
    for line in say:
        print(line)
    print(f"ExecStart uses {exe}")
    print("next: sudo systemd-sysusers && sudo systemctl daemon-reload")
    print("      sudo systemctl enable --now edgebench-agent")
    return EXIT_OK
