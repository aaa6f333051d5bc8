"""``edgebench-agent serve | info``: the board daemon's command line.

Usage errors and bad input print one line and exit 2 (DESIGN.md). ``serve``
prints ``listening on HOST:PORT`` once bound (port 0 picks a free one) and
stops gracefully on SIGTERM/SIGINT: in-flight runs end ``interrupted``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
from typing import NoReturn

from agent.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput, stdout_gone
from agent.version import VersionAction

DEFAULT_LISTEN = "127.0.0.1:50551"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def parse_size(text: str) -> int:
    """``4G``, ``512MiB``, ``1048576`` -> bytes (binary multiples)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 4G, 512M or bytes")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    value = int(float(m.group(1)) * mult)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: must be positive")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"bad port {text!r}: must be 0-65535")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"bad count {text!r}: must be a positive integer")
    return value


def _seconds(text: str) -> float:
    """``90``, ``30m``, ``24h`` -> seconds (> 0)."""
    from agent.spec import parse_duration

    try:
        value = parse_duration(text)
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: must be positive")
    return value


def default_state_dir() -> str:
    # systemd's StateDirectory= sets STATE_DIRECTORY
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return env.split(":")[0]
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "edgebench-agent")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgebench-agent", description="edgebench board agent")
    p.add_argument("--version", action=VersionAction)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("serve", help="run the agent daemon")
    s.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT (default %(default)s; port 0 = any)")
    s.add_argument("--state-dir", default=None, help="artifacts and runs live here")
    s.add_argument("--profile", default="auto", help="hardware profile name, or auto")
    s.add_argument("--sysfs-root", default="/", help="root path standing for / (fixture trees)")
    s.add_argument("--meter", default=None, help="KIND:PORT of a current meter (ina-csv, scpi, ppk2)")
    s.add_argument("--meter-opt", action="append", default=[], metavar="K=V", help="a meter option")
    m = s.add_mutually_exclusive_group()
    m.add_argument("--metrics-port", type=_port, default=None, help="serve /metrics on 127.0.0.1:N")
    m.add_argument(
        "--metrics-listen", default=None, metavar="HOST:PORT", help="serve /metrics here (it has no auth)"
    )
    s.add_argument("--token-file", default=None, help="require this bearer token on every RPC")
    s.add_argument("--tls-cert", default=None)
    s.add_argument("--tls-key", default=None)
    s.add_argument("--tls-client-ca", default=None, help="require client certificates signed by this CA")
    s.add_argument("--insecure", action="store_true", help="allow a non-loopback listen without auth")
    s.add_argument(
        "--artifact-quota", type=parse_size, default="4G", help="artifact store quota (default 4G)"
    )
    s.add_argument(
        "--min-free",
        type=parse_size,
        default="64M",
        help="free space kept in the state dir: below it runs are refused, health NOT_SERVING (default 64M)",
    )
    s.add_argument(
        "--max-queued",
        type=_positive_int,
        default=64,
        help="runs waiting at most; more are refused (default 64)",
    )
    s.add_argument(
        "--max-run-s",
        type=_seconds,
        default="24h",
        help="hard cap on any run's wall-clock time (default 24h; each run's own limit comes from its spec)",
    )
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    i = sub.add_parser("info", help="print the board fingerprint")
    i.add_argument("--sysfs-root", default="/")
    i.add_argument("--profile", default="auto")
    i.add_argument("--json", action="store_true", help="print edgebench.info/v1 JSON")
    return p


def _info(args: argparse.Namespace) -> int:
    from agent.fingerprint import collect_info
    from agent.rootfs import RootFS

    info = collect_info(RootFS(args.sysfs_root), args.profile)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        for key, value in info.items():
            text = value if isinstance(value, (str, int, float)) or value is None else json.dumps(value)
            print(f"{key}: {text}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from agent.server.app import AgentServer
    from agent.server.auth import read_token_file

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not os.path.isdir(args.sysfs_root):
        raise BadInput(f"--sysfs-root {args.sysfs_root} is not a directory")
    token = read_token_file(args.token_file) if args.token_file else None
    server = AgentServer(
        state_dir=args.state_dir or default_state_dir(),
        listen=args.listen,
        sysfs_root=args.sysfs_root,
        profile=args.profile,
        token=token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        insecure=args.insecure,
        meter=args.meter,
        meter_opts=args.meter_opt,
        metrics_port=args.metrics_port,
        metrics_listen=args.metrics_listen,
        artifact_quota=args.artifact_quota,
        min_free=args.min_free,
        max_queued=args.max_queued,
        max_run_s=args.max_run_s,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    address = server.start()
    # the metrics line first: tests and supervisors wait for "listening on"
    if server.metrics_url:
        print(f"metrics on {server.metrics_url}", flush=True)
    print(f"listening on {address}", flush=True)
    while not stop.wait(3600):
        pass
    logging.getLogger("edgebench.agent").info("stopping")
    server.stop(grace=5)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "info":
            code = _info(args)
            sys.stdout.flush()  # a reader that left (`| head -4`) shows here, not at interpreter exit
            return code
        return _serve(args)
    except BrokenPipeError:
        return stdout_gone()
    except BadInput as exc:
        print(f"edgebench-agent: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
