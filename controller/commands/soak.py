"""``edgebench soak MODEL --duration 30m --window 10s [run options]``.

Sustained inference for the whole duration (30 minutes unless told), one
window record every ``--window``; the agent attributes any throughput drop
to the clock and temperature changes that coincide with it, and this command
prints the one-sentence story, exits 3 when ``--target-ips`` is missed, and
can write the HTML report (``--html FILE``).

Lossless watching: every window is journaled on the agent before it is
streamed; this command keeps a cursor per run (last seq + windows shown) so
``edgebench soak --attach RUN_ID`` resumes after the last window it had, and
shows each window exactly once across attachments.

The live view: a progress bar, the current throughput, the hottest zone and
the clock of each domain on a terminal; one plain line per window otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import IO, Any


def cursor_dir() -> Path:
    """$EDGEBENCH_HOME/watch, else the user data dir's watch/."""
    home = os.environ.get("EDGEBENCH_HOME")
    if home:
        base = Path(home)
    else:
        try:
            import platformdirs

            base = Path(platformdirs.user_data_dir("edgebench"))
        except ImportError:
            base = Path.home() / ".local" / "share" / "edgebench"
    return base / "watch"


class Cursor:
    def __init__(self, run_id: str, directory: Path | None = None) -> None:
        self.path = (directory or cursor_dir()) / f"{run_id}.json"
        self.run_id = run_id
        self.last_seq = 0
        self.windows: list[dict[str, Any]] = []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.last_seq = int(data.get("last_seq") or 0)
            self.windows = list(data.get("windows") or [])
        except (OSError, ValueError):
            pass

    def advance(self, seq: int, window: dict[str, Any] | None = None) -> bool:
        """Record event ``seq``; False when it was already seen (never show it twice)."""
        if seq <= self.last_seq:
            return False
        self.last_seq = seq
        if window is not None:
            self.windows.append(window)
            self.save()  # a window shown is a window remembered
        return True

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(
            json.dumps({"run_id": self.run_id, "last_seq": self.last_seq, "windows": self.windows})
        )
        os.replace(tmp, self.path)

    def drop(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


def hottest(temps: dict[str, Any] | None) -> tuple[str | None, float | None]:
    best: tuple[str | None, float | None] = (None, None)
    for z, v in (temps or {}).items():
        t = v.get("max") if isinstance(v, dict) else v
        if isinstance(t, (int, float)) and (best[1] is None or t > best[1]):
            best = (z, float(t))
    return best


def clocks_text(clocks: dict[str, Any] | None) -> str:
    parts = []
    for d, v in sorted((clocks or {}).items()):
        hz = v.get("min") if isinstance(v, dict) else v
        if isinstance(hz, (int, float)):
            parts.append(f"{d} {hz / 1e6:.0f}")
    return (" ".join(parts) + " MHz") if parts else "clocks n/a"


class SoakView:
    """Shows windows and samples as they come; ``plain`` forces line output."""

    def __init__(
        self, duration_s: float, window_s: float, out: IO[str] | None = None, plain: bool | None = None
    ):
        self.out = out or sys.stdout
        self.duration_s = float(duration_s)
        self.window_s = float(window_s)
        self.expected = max(1, int(self.duration_s // self.window_s))
        self.n = 0
        self.last_window: dict[str, Any] | None = None
        self.last_sample: dict[str, Any] | None = None
        self.phase = "starting"
        isatty = getattr(self.out, "isatty", lambda: False)()
        self.plain = (not isatty) if plain is None else plain
        self._live = None
        self._progress = None

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> SoakView:
        if not self.plain:
            try:
                from rich.console import Console
                from rich.live import Live

                self._console = Console(file=self.out)
                self._live = Live(
                    self._render(), console=self._console, refresh_per_second=4, transient=False
                )
                self._live.__enter__()
            except ImportError:
                self.plain = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)
            self._live = None

    # -- events ----------------------------------------------------------------
    def resumed(self, windows: list[dict[str, Any]]) -> None:
        self.n = len(windows)
        if windows:
            self.last_window = windows[-1]
            self._line(f"resuming after window {self.n} (t={windows[-1].get('t_s', 0):.0f}s)")

    def on_phase(self, phase: str) -> None:
        self.phase = phase
        if self.plain and phase in ("warmup", "measure"):
            self._line(f"phase: {phase}")
        self._refresh()

    def on_sample(self, sample: dict[str, Any]) -> None:
        self.last_sample = sample
        self._refresh()

    def on_window(self, w: dict[str, Any]) -> None:
        self.n += 1
        self.last_window = w
        if self.plain:
            zone, temp = hottest(w.get("temps_c"))
            hot = f"{zone} {temp:.1f} °C" if zone else "temps n/a"
            p99 = w.get("p99_ms")
            p99s = f" p99 {p99:.2f} ms" if isinstance(p99, (int, float)) else ""
            ips = float(w.get("throughput_ips") or 0)
            self._line(
                f"window {self.n:>4}/{self.expected} t={float(w.get('t_s', 0)):7.1f}s "
                f"{ips:9.2f} ips{p99s} | {hot} | {clocks_text(w.get('clocks_hz'))}"
            )
        self._refresh()

    def message(self, text: str) -> None:
        self._line(text)

    # -- output ----------------------------------------------------------------
    def _line(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.out, flush=True)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.text import Text

        done = self.n * self.window_s
        w = self.last_window or {}
        s = self.last_sample or {}
        zone, temp = hottest(s.get("temps_c") or w.get("temps_c"))
        clocks = s.get("clocks_hz") or w.get("clocks_hz")
        ips = w.get("throughput_ips")
        head = Text(
            f"soak {self.phase}: {done:.0f}/{self.duration_s:.0f} s, window {self.n}/{self.expected}",
            style="bold",
        )
        bar = ProgressBar(total=max(self.duration_s, 1e-9), completed=min(done, self.duration_s), width=50)
        body = Text(f"throughput {ips:.2f} ips" if isinstance(ips, (int, float)) else "throughput —")
        body.append(f"\nhottest {zone} {temp:.1f} °C" if zone else "\nhottest —")
        body.append(f"\nclocks {clocks_text(clocks)}")
        return Group(head, bar, body)


# -- the command -------------------------------------------------------------
DEFAULT_DURATION_S = 30 * 60.0
DEFAULT_WINDOW_S = 10.0


def _add(p: argparse.ArgumentParser, *flags: str, **kw: Any) -> None:
    """Add an option unless the shared run options already define it."""
    if any(f in p._option_string_actions for f in flags):
        return
    p.add_argument(*flags, **kw)


def _duration(text: str) -> float:
    from agent.spec import parse_duration

    try:
        return parse_duration(text)
    except Exception as exc:  # BadInput -> an argparse usage error (exit 2, one line)
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "soak",
        help="sustained inference (default 30 minutes) with throttling found and attributed",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("model", nargs="?", help="model file (.onnx, .tflite); omit with --attach")
    try:
        from controller.runopts import add_run_options
    except ImportError:  # the shared run options are not installed: the soak's own below
        add_run_options = None
    if add_run_options is not None:
        add_run_options(p)
    else:
        _add(p, "--threads", type=int, default=None)
        _add(p, "--warmup", type=_duration, default=None)
        _add(p, "--runtime", choices=("onnxruntime", "litert"), default=None)
    # soak defaults: 30 minutes, 10 s windows (bench's --duration means seconds of measurement)
    for a in p._actions:
        if a.dest == "duration":
            a.default = DEFAULT_DURATION_S
            a.type = _duration
            a.help = "soak length, e.g. 30m, 90s, 1h (default 30m)"
    _add(p, "--duration", type=_duration, default=DEFAULT_DURATION_S, help="soak length (default 30m)")
    _add(p, "--window", type=_duration, default=DEFAULT_WINDOW_S, help="window length (default 10s)")
    _add(p, "--ambient-c", type=float, default=None, help="ambient temperature (metadata)")
    _add(p, "--enclosure", default=None, help="enclosure label (metadata)")
    _add(p, "--target-ips", type=float, default=None, help="sustained throughput target; exit 3 when missed")
    _add(p, "--start-cold", action="store_true", help="wait at idle until temperatures stop falling first")
    _add(p, "--start-cold-max", type=_duration, default=600.0, help="bound on the --start-cold wait (10m)")
    _add(p, "--attach", metavar="RUN_ID", default=None, help="re-attach to a running or finished soak")
    _add(p, "--html", metavar="FILE", default=None, help="write the HTML report here")
    _add(p, "--json", metavar="FILE", default=None, help="write the result document here")
    _add(p, "--agent", metavar="ADDR", default=None, help="agent HOST:PORT (default: an embedded agent)")
    _add(p, "--token-file", default=None)
    _add(p, "--tls-ca", default=None)
    _add(p, "--tls-cert", default=None)
    _add(p, "--tls-key", default=None)
    p.set_defaults(func=run)
    return p


class _Agent:
    """The few agent calls a soak needs, on the generated stub (the wire
    contract): push, start, resumable watch, get, fetch."""

    def __init__(self, address: str, token: str | None = None, creds: Any = None) -> None:
        import grpc

        from agent.rpc.edgebench.v1 import agent_pb2 as pb
        from agent.rpc.edgebench.v1 import agent_pb2_grpc as pb_grpc

        self.pb, self.grpc = pb, grpc
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        ch = (
            grpc.secure_channel(address, creds, options=opts)
            if creds
            else grpc.insecure_channel(address, opts)
        )
        self.channel = ch
        self.stub = pb_grpc.AgentStub(ch)
        self.md = [("authorization", f"Bearer {token}")] if token else None
        self.address = address

    def push(self, path: Path) -> str:
        import hashlib

        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        sha, size = h.hexdigest(), path.stat().st_size
        st = self.stub.StatArtifact(self.pb.StatArtifactRequest(sha256=sha), metadata=self.md)
        if st.present:
            return sha
        offset = st.committed_offset
        pb = self.pb

        def chunks() -> Any:
            yield pb.UploadChunk(
                header=pb.UploadHeader(sha256=sha, size_bytes=size, name=path.name, offset=offset)
            )
            with open(path, "rb") as f:
                f.seek(offset)
                for block in iter(lambda: f.read(1 << 20), b""):
                    yield pb.UploadChunk(data=block)

        self.stub.Upload(chunks(), metadata=self.md)
        return sha

    def start(self, spec: dict) -> str:
        req = self.pb.StartRunRequest(spec_json=json.dumps(spec))
        return self.stub.StartRun(req, metadata=self.md).run_id

    def get(self, run_id: str) -> Any:
        return self.stub.GetRun(self.pb.GetRunRequest(run_id=run_id), metadata=self.md)

    def watch(self, run_id: str, after_seq: int) -> Any:
        """Events after ``after_seq``; reconnects from the last seq seen when the
        connection drops, until the run's result event."""
        import time

        last = after_seq
        failures = 0
        while True:
            try:
                req = self.pb.WatchRunRequest(run_id=run_id, after_seq=last)
                for ev in self.stub.WatchRun(req, metadata=self.md):
                    failures = 0
                    last = ev.seq
                    yield ev
                    if ev.kind == "result":
                        return
                return
            except self.grpc.RpcError as exc:
                if exc.code() != self.grpc.StatusCode.UNAVAILABLE or failures >= 30:
                    raise
                failures += 1
                time.sleep(min(2.0, 0.1 * 2**failures))

    def fetch(self, run_id: str, name: str, dest: Path) -> Path | None:
        req = self.pb.FetchRunFileRequest(run_id=run_id, name=name)
        try:
            with open(dest, "wb") as f:
                for chunk in self.stub.FetchRunFile(req, metadata=self.md):
                    f.write(chunk.data)
        except self.grpc.RpcError:
            dest.unlink(missing_ok=True)
            return None
        return dest

    def close(self) -> None:
        self.channel.close()


def _connect(args: argparse.Namespace) -> tuple[_Agent, Any]:
    """The agent to talk to: --agent ADDR, or an embedded one for this call."""
    from agent.errors import BadInput

    token = None
    if getattr(args, "token_file", None):
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise BadInput(f"cannot read token file {args.token_file}: {exc.strerror}") from None
    creds = None
    if getattr(args, "tls_ca", None):
        import grpc

        def rd(p: str | None) -> bytes | None:
            return Path(p).read_bytes() if p else None

        creds = grpc.ssl_channel_credentials(rd(args.tls_ca), rd(args.tls_key), rd(args.tls_cert))
    if args.agent:
        agent = _Agent(args.agent, token, creds)
        try:
            agent.stub.GetInfo(agent.pb.GetInfoRequest(), metadata=agent.md, timeout=10)
        except agent.grpc.RpcError as exc:
            agent.close()
            code = exc.code()
            what = "rejected the token" if code == agent.grpc.StatusCode.UNAUTHENTICATED else "is unreachable"
            raise BadInput(f"agent {args.agent} {what}: {exc.details()}") from None
        return agent, None
    embedded = _embedded()
    return _Agent(embedded.address), embedded


def _embedded() -> Any:
    try:
        from controller.embedded import EmbeddedAgent

        emb = EmbeddedAgent()
        emb.__enter__()
        return emb
    except ImportError:
        pass
    from agent.server.app import AgentServer

    class _Server:
        def __init__(self) -> None:
            state = Path(os.environ.get("EDGEBENCH_HOME") or cursor_dir().parent) / "agent"
            self.server = AgentServer(state_dir=state)
            self.address = self.server.start()

        def __exit__(self, *exc: object) -> None:
            self.server.stop(0)

    return _Server()


def _soak_spec(args: argparse.Namespace, sha: str, name: str) -> dict:
    from agent.spec import RunSpec, SoakSpec

    try:
        from controller.runopts import spec_from_args
    except ImportError:
        spec_from_args = None
    if spec_from_args is not None:
        spec = spec_from_args(args, "soak", sha, name)
    else:
        spec = RunSpec(kind="soak", model_sha256=sha, model_name=name)
        for key in ("threads", "warmup", "runtime"):
            v = getattr(args, key, None)
            if v is not None:
                setattr(spec, "warmup_s" if key == "warmup" else key, v)
        spec.min_iterations = 1
    spec.duration_s = float(args.duration)
    spec.soak = SoakSpec(
        window_s=float(args.window),
        ambient_c=args.ambient_c,
        enclosure=args.enclosure,
        target_ips=args.target_ips,
        start_cold=bool(args.start_cold),
        start_cold_max_s=float(args.start_cold_max),
    )
    spec.validate()
    return spec.to_dict()


def _check(args: argparse.Namespace) -> None:
    from agent.errors import BadInput

    if args.attach and args.model:
        raise BadInput("give a MODEL or --attach RUN_ID, not both")
    if not args.attach and not args.model:
        raise BadInput("soak needs a MODEL (or --attach RUN_ID)")
    if args.window <= 0:
        raise BadInput("--window must be positive")
    if args.duration <= 0:
        raise BadInput("--duration must be positive")
    if args.window > args.duration:
        raise BadInput(f"--window ({args.window:g} s) is longer than --duration ({args.duration:g} s)")
    if args.target_ips is not None and args.target_ips <= 0:
        raise BadInput("--target-ips must be positive")
    if args.model and not Path(args.model).is_file():
        raise BadInput(f"model file not found: {args.model}")


def run(args: argparse.Namespace) -> int:
    from agent.errors import BadInput

    _check(args)
    agent, embedded = _connect(args)
    try:
        if args.attach:
            try:
                rec = agent.get(args.attach)
            except agent.grpc.RpcError as exc:
                raise BadInput(f"no run {args.attach} on {agent.address}: {exc.details()}") from None
            run_id = args.attach
            spec = json.loads(rec.spec_json or "{}")
            if spec.get("kind") != "soak":
                raise BadInput(f"run {run_id} is a {spec.get('kind')} run, not a soak")
        else:
            model = Path(args.model)
            sha = agent.push(model)
            spec = _soak_spec(args, sha, model.name)
            run_id = agent.start(spec)
        result = _follow(agent, run_id, spec)
        return _finish(args, agent, run_id, result)
    finally:
        agent.close()
        if embedded is not None:
            embedded.__exit__(None, None, None)


def _follow(agent: _Agent, run_id: str, spec: dict) -> dict:
    """Show the run's windows live, each once, until its result; the result document."""
    soak = spec.get("soak") or {}
    cursor = Cursor(run_id)
    print(f"soak {run_id} on {agent.address}", flush=True)
    with SoakView(
        float(spec.get("duration_s") or 0), float(soak.get("window_s") or DEFAULT_WINDOW_S)
    ) as view:
        view.resumed(cursor.windows)
        for ev in agent.watch(run_id, cursor.last_seq):
            payload = json.loads(ev.payload_json or "{}")
            if not cursor.advance(ev.seq, payload if ev.kind == "window" else None):
                continue
            if ev.kind == "window":
                view.on_window(payload)
            elif ev.kind == "sample":
                view.on_sample(payload)
            elif ev.kind == "phase":
                view.on_phase(str(payload.get("phase")))
            elif ev.kind == "log" and payload.get("message"):
                view.message(str(payload["message"]))
        cursor.save()
    rec = agent.get(run_id)
    result = json.loads(rec.result_json) if rec.result_json else {"run_id": run_id, "status": rec.status}
    if rec.status in ("completed", "failed", "cancelled", "interrupted"):
        cursor.drop()  # the run is over: the result holds every window
    return result


def _finish(args: argparse.Namespace, agent: _Agent, run_id: str, result: dict) -> int:
    soak = result.get("soak") or {}
    status = result.get("status")
    if soak.get("summary"):
        print(soak["summary"])
    if soak.get("cold_throughput_ips") is not None:
        sus = soak["sustained_throughput_ips"]
        print(
            f"cold {soak['cold_throughput_ips']:.2f} ips, sustained {sus:.2f} ips "
            f"(ratio {soak['sustained_ratio']:.3f}), stability {soak['stability']:.3f}, "
            f"verdict {soak.get('verdict')}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.html:
        import tempfile

        from controller.report.html import write_html

        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for name in ("telemetry.jsonl", "iterations.npy", "power.bin", "power.json"):
                got = agent.fetch(run_id, name, Path(tmp) / name)
                if got is not None:
                    files[name] = got
            write_html(result, files, Path(args.html))
        print(f"report: {args.html}")
    _store(result)
    gates = [g for g in result.get("gates") or [] if not g.get("passed")]
    if status == "failed":
        print(f"edgebench: error: {result.get('error')}", file=sys.stderr)
        return 2 if result.get("error_code") == "bad_input" else 1
    if status != "completed":
        print(f"soak {status}: {result.get('error') or ''}".rstrip(": "), file=sys.stderr)
        return 1
    for g in gates:
        print(f"gate {g.get('name')} failed: {g.get('message')}", file=sys.stderr)
    return 3 if gates else 0


def _store(result: dict) -> None:
    """Keep the result in the results DB when the controller has one."""
    try:
        from controller import db
    except ImportError:
        return
    store = getattr(db, "store_result", None)
    if store is not None and result.get("status") != "failed":
        store(result)
