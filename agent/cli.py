"""``edgebench-agent serve | info | install``: the board daemon's command line.

Usage errors and bad input print one line and exit 2 (DESIGN.md). ``serve``
prints ``listening on HOST:PORT`` once bound (port 0 picks a free one) and
stops gracefully on SIGTERM/SIGINT: in-flight runs end ``interrupted``.
Under systemd it sends READY=1 then, pings the watchdog while the agent is
alive, and re-reads its token file on SIGHUP. Options may come from
``/etc/edgebench/agent.yaml`` (``--config F``); the command line wins.
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
from agent.service.config import DEFAULT_CONFIG
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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad count {text!r}: a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"bad count {text!r}: must not be negative")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number of days {text!r}") from None
    if not 0 <= value < 1e6:
        raise argparse.ArgumentTypeError(f"bad number of days {text!r}: 0 (off) or more")
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
    from agent.spec_text import parse_duration

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
    p._serve_parser = s  # type: ignore[attr-defined]  # the config file sets its defaults
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
    s.add_argument(
        "--upload-expiry",
        type=_seconds,
        default="24h",
        metavar="DURATION",
        help="remove partial uploads idle this long (default 24h)",
    )
    s.add_argument(
        "--keep-runs", type=_count, default=0, metavar="N", help="keep the newest N finished runs (0 = all)"
    )
    s.add_argument(
        "--keep-days", type=_days, default=0.0, metavar="D", help="delete finished runs older than D days"
    )
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument(
        "--config", default=None, metavar="F", help=f"options file (default {DEFAULT_CONFIG} if present)"
    )

    n = sub.add_parser("install", help="install the systemd unit, drop-in, sysusers file and agent.yaml")
    n.add_argument("--systemd", action="store_true", required=True, help="install for systemd")
    n.add_argument("--prefix", default="/", help="root to install under (default /)")
    n.add_argument("--board", default="auto", help="drop-in: jetson, imx8mp, am62a, none or auto")
    n.add_argument("--sysfs-root", default="/", help="root path standing for / (board detection)")

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


def _with_config(
    parser: argparse.ArgumentParser, argv: list[str] | None, args: argparse.Namespace
) -> argparse.Namespace:
    """``serve`` options from the config file, under the command line's."""
    from agent.service import config

    path = args.config
    if path is None:
        if not os.path.exists(DEFAULT_CONFIG):
            return args
        path = DEFAULT_CONFIG
    serve = parser._serve_parser  # type: ignore[attr-defined]
    values = config.load(path, serve)
    if args.metrics_port is not None or args.metrics_listen is not None:
        # the two exclude each other: the command line's choice replaces the file's
        values.pop("metrics_port", None)
        values.pop("metrics_listen", None)
    serve.set_defaults(**values)
    return parser.parse_args(argv)


def _serve(args: argparse.Namespace) -> int:
    from agent.server.app import AgentServer
    from agent.server.auth import read_token_file
    from agent.service import notify

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
        upload_expiry_s=args.upload_expiry,
        keep_runs=args.keep_runs,
        keep_days=args.keep_days,
    )
    log = logging.getLogger("edgebench.agent")
    # the handlers only flag; the main thread does the work (logging and file
    # reads are not safe inside a signal handler)
    wake = threading.Event()
    flags = {"stop": False, "hup": False}

    def on_stop(signum: int, frame: object) -> None:
        flags["stop"] = True
        wake.set()

    def on_hup(signum: int, frame: object) -> None:
        flags["hup"] = True
        wake.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    address = server.start()
    # the metrics line first: tests and supervisors wait for "listening on"
    if server.metrics_url:
        print(f"metrics on {server.metrics_url}", flush=True)
    print(f"listening on {address}", flush=True)
    # bound and the store recovered: systemd may start what depends on us
    notify.notify(f"READY=1\nSTATUS=listening on {address}\nMAINPID={os.getpid()}")
    interval = notify.watchdog_interval()
    watchdog = notify.Watchdog(interval, server.alive).start() if interval else None
    while True:
        wake.wait(3600)
        wake.clear()
        if flags["stop"]:
            break
        if flags["hup"]:
            flags["hup"] = False
            _reload(server, args.token_file, log)
    log.info("stopping")
    notify.notify("STOPPING=1")
    if watchdog is not None:
        watchdog.stop()
    server.stop(grace=5)
    return EXIT_OK


def _reload(server: object, token_file: str | None, log: logging.Logger) -> None:
    """SIGHUP: re-read the token file. A bad file keeps the old token (the
    agent stays reachable) and says why."""
    from agent.server.auth import read_token_file
    from agent.service import notify

    if not token_file:
        log.info("SIGHUP: no --token-file; nothing to reload")
        return
    notify.notify("RELOADING=1")
    try:
        server.reload_token(read_token_file(token_file))  # type: ignore[attr-defined]
        log.info("SIGHUP: token reloaded from %s", token_file)
    except BadInput as exc:
        log.error("SIGHUP: keeping the old token: %s", exc)
    notify.notify("READY=1")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            code = _info(args)
            sys.stdout.flush()  # a reader that left (`| head -4`) shows here, not at interpreter exit
            return code
        if args.command == "install":
            from agent.service.install import install

            return install(args.prefix, args.board, args.sysfs_root)
        return _serve(_with_config(parser, argv, args))
    except BrokenPipeError:
        return stdout_gone()
    except BadInput as exc:
        print(f"edgebench-agent: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
