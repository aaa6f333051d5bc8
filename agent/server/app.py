"""Server assembly: store + run manager + servicer + health + auth on one gRPC
server. ``edgebench-agent serve`` runs it as a daemon; the controller's
embedded agent runs it in-process on loopback.

Secure by default: a non-loopback listen address needs a token or mTLS
(client CA) unless ``insecure`` is set.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from agent import profiles
from agent.errors import BadInput
from agent.fingerprint import collect_info
from agent.rootfs import RootFS
from agent.rpc.edgebench.v1 import agent_pb2 as pb
from agent.rpc.edgebench.v1 import agent_pb2_grpc as pb_grpc
from agent.runs import limits
from agent.runs.manager import RunManager
from agent.runs.worker import DEFAULT_TASK
from agent.server.auth import is_loopback, server_credentials, split_listen
from agent.server.guard import MAX_RECEIVE_BYTES, Guard, pool_size
from agent.server.metrics import MetricsServer, start_metrics_server
from agent.server.service import AgentService
from agent.service.housekeeping import DEFAULT_UPLOAD_EXPIRY_S, Housekeeper
from agent.spec_text import parse_meter
from agent.store.artifacts import DEFAULT_QUOTA_BYTES, ArtifactStore

log = logging.getLogger("edgebench.agent")

SERVICE_NAME = "edgebench.v1.Agent"
# replies (a run record with its result) may be large; requests are bounded
# per method by the guard, and by MAX_RECEIVE_BYTES for all
MAX_SEND_BYTES = 64 << 20
# every method this server answers: the guard bounds each one
_METHODS = [f"/{SERVICE_NAME}/{m.name}" for m in pb.DESCRIPTOR.services_by_name["Agent"].methods] + [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
]


class AgentServer:
    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        listen: str = "127.0.0.1:0",
        sysfs_root: str | os.PathLike[str] = "/",
        profile: str = "auto",
        token: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_client_ca: str | None = None,
        insecure: bool = False,
        meter: str | None = None,
        meter_opts: list[str] | dict[str, str] | None = None,
        metrics_port: int | None = None,
        metrics_listen: str | None = None,
        artifact_quota: int = DEFAULT_QUOTA_BYTES,
        task: str = DEFAULT_TASK,
        max_workers: int | None = None,
        min_free: int = limits.DEFAULT_MIN_FREE,
        max_queued: int = limits.DEFAULT_MAX_QUEUED,
        max_run_s: float = limits.DEFAULT_MAX_RUN_S,
        cancel_grace_s: float = limits.CANCEL_GRACE_S,
        upload_expiry_s: float = DEFAULT_UPLOAD_EXPIRY_S,
        keep_runs: int = 0,
        keep_days: float = 0.0,
        allow_code: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.allow_code = bool(allow_code)  # pipelines' user stages (pushed Python) may run
        self.listen = listen
        self.host, self.port = split_listen(listen)
        self.root = RootFS(sysfs_root)
        self.profile = profile
        self.token = token
        self.metrics_port = metrics_port
        self.artifact_quota = int(artifact_quota)
        self.task = task
        self.max_workers = max_workers
        # the run path's bounds (agent/runs/limits.py): serve --min-free, --max-queued, --max-run-s
        self.run_limits = {
            "min_free": min_free,
            "max_queued": max_queued,
            "max_run_s": max_run_s,
            "cancel_grace_s": cancel_grace_s,
        }
        self.upload_expiry_s = float(upload_expiry_s)
        self.keep_runs = int(keep_runs)
        self.keep_days = float(keep_days)
        if not self.upload_expiry_s > 0:
            raise BadInput("--upload-expiry must be positive")
        if self.keep_runs < 0 or not self.keep_days >= 0:
            raise BadInput("--keep-runs and --keep-days must not be negative")
        if bool(tls_cert) != bool(tls_key):
            raise BadInput("--tls-cert and --tls-key go together")
        if tls_client_ca and not tls_cert:
            raise BadInput("--tls-client-ca needs --tls-cert and --tls-key")
        if self.artifact_quota <= 0:
            raise BadInput("--artifact-quota must be positive")
        if metrics_port is not None and not 0 <= int(metrics_port) <= 65535:
            raise BadInput(f"bad --metrics-port {metrics_port}")
        # /metrics has no auth: loopback unless the admin names an address
        self.metrics_addr = _metrics_addr(metrics_port, metrics_listen)
        if not is_loopback(self.host) and not (token or tls_client_ca) and not insecure:
            raise BadInput(
                f"refusing to listen on non-loopback {listen} without --token-file or mTLS "
                "(--tls-cert/--tls-key/--tls-client-ca); pass --insecure to allow it"
            )
        self.tls = (tls_cert, tls_key, tls_client_ca) if tls_cert else None
        self.warnings = self._warnings()
        self.meter = parse_meter(meter, meter_opts) if meter else None
        self.address: str | None = None
        self.store: ArtifactStore | None = None
        self.runs: RunManager | None = None
        self._server: grpc.Server | None = None
        self._guard: Guard | None = None
        self._serve_thread: threading.Thread | None = None
        self.housekeeper: Housekeeper | None = None
        self._health: health.HealthServicer | None = None
        self._metrics: MetricsServer | None = None
        self._lock_fd: int | None = None
        self._info: dict | None = None
        self._info_lock = threading.Lock()

    # -- fingerprint (cached: it does not change while we run) ----------------
    def info(self) -> dict:
        with self._info_lock:
            if self._info is None:
                self._info = collect_info(self.root, self.profile)
            return self._info

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> str:
        """Bind and serve; returns the bound ``host:port``."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_state_dir()
        try:
            return self._start()
        except BaseException:
            self._unlock_state_dir()
            raise

    def _start(self) -> str:
        self._check_profile()
        self.store = ArtifactStore(self.state_dir, self.artifact_quota)
        self.runs = RunManager(
            self.state_dir,
            self.store,
            root=self.root,
            profile=self.profile,
            info=self.info,
            task=self.task,
            default_meter=self.meter,
            allow_code=self.allow_code,
            **self.run_limits,
        )
        self.housekeeper = Housekeeper(
            self.store, self.runs, self.upload_expiry_s, keep_runs=self.keep_runs, keep_days=self.keep_days
        )
        self.housekeeper.at_start()
        # threads: above the sum of the per-method bounds (guard.py), so open
        # streams never leave a call without a thread to answer it
        workers = self.max_workers or pool_size(_METHODS)
        self._guard = Guard(self.token)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgebench-rpc"),
            interceptors=[self._guard],
            options=[
                ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
                ("grpc.max_send_message_length", MAX_SEND_BYTES),
                ("grpc.so_reuseport", 0),
                # BDP probing grows each stream's receive window to megabytes,
                # and grpc fills it even for a call the guard refuses unread;
                # the fixed 64 KiB window bounds that (LAN uploads keep pace)
                ("grpc.http2.bdp_probe", 0),
            ],
            # the pool's queue: beyond this many calls, grpc refuses at once
            maximum_concurrent_rpcs=4 * workers,
        )
        pb_grpc.add_AgentServicer_to_server(AgentService(self.store, self.runs, self.info), server)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        target = f"{self.host}:{self.port}"
        try:
            if self.tls:
                port = server.add_secure_port(target, server_credentials(*self.tls))
            else:
                port = server.add_insecure_port(target)
        except RuntimeError:  # gRPC's text points at GRPC_VERBOSITY: say what it means
            self.runs.close()
            raise BadInput(f"cannot listen on {self.listen}: address in use or not available") from None
        if not port:
            self.runs.close()
            raise BadInput(f"cannot listen on {self.listen}: address in use or not available")
        before = set(threading.enumerate())
        server.start()
        self._server = server
        self._serve_thread = _grpc_serve_thread(before)
        self.housekeeper.start()
        # SERVING only while the agent can work (a dead dispatcher, a full disk)
        self.runs.watch_health(self._set_health)
        self.address = f"{self.host}:{port}"
        if self.metrics_addr is not None:
            try:
                self._start_metrics()
            except BadInput:
                server.stop(0)
                self.runs.close()
                raise
        for line in self.warnings:
            log.warning("%s", line)
        if self.runs.recovered:
            log.info(
                "marked %d in-flight run(s) interrupted: %s", len(self.runs.recovered), self.runs.recovered
            )
        return self.address

    def _set_health(self, problem: str | None) -> None:
        status = health_pb2.HealthCheckResponse
        for name in ("", SERVICE_NAME):
            self._health.set(name, status.SERVING if problem is None else status.NOT_SERVING)

    def _check_profile(self) -> None:
        """A named profile that does not exist is a usage error (exit 2), not a
        surprise at the first run."""
        if self.profile in ("", "auto"):
            return
        profiles.resolve(self.root, self.profile)  # BadInput names what is available

    def _warnings(self) -> list[str]:
        """Risky but allowed setups: one line each, logged when serving starts."""
        out = []
        if self.token and not self.tls and not is_loopback(self.host):
            out.append(
                f"the bearer token travels in plaintext on {self.listen}: anyone on the network "
                "can read it; add --tls-cert/--tls-key"
            )
        if self.metrics_addr is not None and not is_loopback(self.metrics_addr[0]):
            host, port = self.metrics_addr
            out.append(f"/metrics on {host}:{port} has no auth: scrape it through an authenticating proxy")
        if self.allow_code:
            out.append("--allow-code: pipeline runs may execute pushed Python with this agent's rights")
        return out

    def _start_metrics(self) -> None:
        assert self.metrics_addr is not None
        host, port = self.metrics_addr
        try:
            self._metrics = start_metrics_server(port, self.root, self.profile, self.runs, addr=host)
        except OSError as exc:
            raise BadInput(f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc}") from None

    @property
    def metrics_url(self) -> str | None:
        return self._metrics.url if self._metrics is not None else None

    def alive(self) -> bool:
        """The run dispatcher and grpc's serving thread are running (the
        systemd watchdog is pinged only while this holds)."""
        if self.runs is None or self._server is None or not self.runs.alive():
            return False
        return self._serve_thread is None or self._serve_thread.is_alive()

    def reload_token(self, token: str | None) -> None:
        """Take a new bearer token for calls from now on (SIGHUP re-reads the
        token file); calls already admitted are not affected."""
        if bool(token) != bool(self.token):
            raise BadInput("a token can be rotated, not added or removed, without a restart")
        self.token = token
        if self._guard is not None:
            self._guard.set_token(token)

    def stop(self, grace: float | None = None) -> None:
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        if self.housekeeper is not None:
            self.housekeeper.stop()
        if self.runs is not None:
            # runs first: each ends interrupted while its watchers are still
            # connected, so a controller hears how its run ended, not silence
            self.runs.close()
        if self._server is not None:
            self._server.stop(grace).wait()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics = None
        self._unlock_state_dir()

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()

    def __enter__(self) -> AgentServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(0)

    # -- one agent per state dir: two would mark each other's runs interrupted --
    def _lock_state_dir(self) -> None:
        fd = os.open(self.state_dir / "agent.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise BadInput(f"state dir {self.state_dir} is in use by another agent") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _unlock_state_dir(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _grpc_serve_thread(before: set[threading.Thread]) -> threading.Thread | None:
    """The thread grpc started to poll its completion queue (all calls go
    through it). grpc does not name it: it is the new thread running
    ``grpc._server._serve``; None if a grpc version starts it differently."""
    for t in set(threading.enumerate()) - before:
        target = getattr(t, "_target", None)
        if getattr(target, "__name__", "") == "_serve":
            return t
    return None


def _metrics_addr(port: int | None, listen: str | None) -> tuple[str, int] | None:
    """``--metrics-port N`` (loopback:N) or ``--metrics-listen HOST:PORT``."""
    if port is not None and listen is not None:
        raise BadInput("give --metrics-port or --metrics-listen, not both")
    if listen is not None:
        try:
            return split_listen(listen)
        except BadInput:
            example = "e.g. 127.0.0.1:9464"
            raise BadInput(f"bad --metrics-listen {listen!r}: expected HOST:PORT, {example}") from None
    return None if port is None else ("127.0.0.1", int(port))
