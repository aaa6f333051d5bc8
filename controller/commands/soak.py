"""``edgebench soak MODEL --duration 30m --window 10s [run options]``.

Sustained inference for the whole duration (30 minutes unless told), one window record
every ``--window``; the agent attributes any throughput drop to the clock and temperature
changes that coincide with it, and this command prints the one-sentence story and the
verdict, exits 3 when ``--target-ips`` is missed, and can write the HTML report.

Lossless watching: every window is journaled on the agent before it is
streamed; this command keeps a cursor per run (last seq + windows shown) so
``edgebench soak --attach RUN_ID`` resumes after the last window it had, and
shows each window exactly once across attachments.

The live view: one line per window (kept as history, scrolling above the
live panel on a terminal), and on a terminal a panel with a progress bar, the
current throughput, the hottest zone and the clock of each domain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from agent.errors import BadInput, EdgebenchError, RunFailed
from agent.soak.attribution import hottest
from controller.commands.common import (
    add_agent_options,
    add_db_option,
    agent_flags,
    agent_name,
    connect,
    exit_code_of,
    final_result,
    gates_failed,
    interrupted,
    push_inputs,
    push_model,
    raise_bad_input,
    store,
    write_json,
)
from controller.paths import data_dir
from controller.report.terminal import validity_lines
from controller.runopts import add_run_options, seconds, spec_from_args


def cursor_dir() -> Path:
    """$EDGEBENCH_HOME/watch, else the user data dir's watch/."""
    return data_dir() / "watch"


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


def clocks_text(clocks: dict[str, Any] | None) -> str:
    """The clock line, e.g. `clocks cpu0 2202 gpu 1300 MHz`; `clocks n/a` without a reading."""
    parts = []
    for d, v in sorted((clocks or {}).items()):
        hz = v.get("min") if isinstance(v, dict) else v
        if isinstance(hz, (int, float)):
            parts.append(f"{d} {hz / 1e6:.0f}")
    return "clocks " + ((" ".join(parts) + " MHz") if parts else "n/a")


def window_line(n: int, expected: int, w: dict[str, Any]) -> str:
    """One window as a history line (both views print it)."""
    zone, temp = hottest(w.get("temps_c"))
    hot = f"{zone} {temp:.1f} °C" if zone else "temps n/a"
    p99 = w.get("p99_ms")
    p99s = f" p99 {p99:.2f} ms" if isinstance(p99, (int, float)) else ""
    ips = float(w.get("throughput_ips") or 0)
    return (
        f"window {n:>4}/{expected} t={float(w.get('t_s', 0)):7.1f}s "
        f"{ips:9.2f} ips{p99s} | {hot} | {clocks_text(w.get('clocks_hz'))}"
    )


class SoakView:
    """Shows windows and samples as they come; ``plain`` forces line output."""

    def __init__(
        self,
        duration_s: float,
        window_s: float,
        out: IO[str] | None = None,
        plain: bool | None = None,
        console: Any = None,
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
        self._console = console  # a rich Console to draw on (tests record one); default: on ``out``

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> SoakView:
        if not self.plain:
            try:
                from rich.console import Console
                from rich.live import Live

                self._console = self._console or Console(file=self.out)
                self._live = Live(
                    self._render(), console=self._console, refresh_per_second=4, transient=False
                )
                self._live.__enter__()
            except ImportError:  # rich: third-party, from the [controller] extra
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
        # one line per window in both views: on a TTY it scrolls above the live panel
        self._line(window_line(self.n, self.expected, w))
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
        from rich.table import Table
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
        # a ProgressBar ends without a newline: in a grid row it keeps a line of its own
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(self.duration_s, 1e-9), completed=min(done, self.duration_s), width=50),
            Text(f"{100 * min(done / max(self.duration_s, 1e-9), 1.0):3.0f}%"),
        )
        body = Text(f"throughput {ips:.2f} ips" if isinstance(ips, (int, float)) else "throughput —")
        body.append(f"\nhottest {zone} {temp:.1f} °C" if zone else "\nhottest —")
        body.append(f"\n{clocks_text(clocks)}")
        return Group(head, bar, body)


# -- the command -------------------------------------------------------------
DEFAULT_DURATION_S = 30 * 60.0
DEFAULT_WINDOW_S = 10.0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "soak",
        help="sustained inference (default 30 minutes) with throttling found and attributed",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("model", nargs="?", help="model file (.onnx, .tflite); omit with --attach")
    # --ambient-c, --enclosure and --target-ips among them; --duration is the
    # whole soak here (bench's means seconds of measurement)
    add_run_options(
        p,
        duration_s=DEFAULT_DURATION_S,
        duration_metavar="DURATION",
        duration_help="soak length, e.g. 30m, 90s, 1h (default 30m)",
    )
    g = p.add_argument_group("soak")
    g.add_argument(
        "--window",
        type=seconds,
        default=DEFAULT_WINDOW_S,
        metavar="DURATION",
        help="window length (default 10s)",
    )
    g.add_argument(
        "--start-cold", action="store_true", help="wait at idle until temperatures stop falling first"
    )
    g.add_argument(
        "--start-cold-max",
        type=seconds,
        default=600.0,
        metavar="DURATION",
        help="bound on the --start-cold wait (10m)",
    )
    g.add_argument("--attach", metavar="RUN_ID", default=None, help="re-attach to a running or finished soak")
    g.add_argument("--html", metavar="FILE", default=None, help="write the HTML report here")
    g.add_argument("--json", metavar="FILE", default=None, help="write the result document here")
    add_agent_options(p)
    add_db_option(p)
    return p


def _soak_spec(args: argparse.Namespace, sha: str, name: str, inputs_sha: str | None = None) -> dict:
    spec = spec_from_args(args, "soak", sha, name, inputs_sha=inputs_sha)
    spec.soak.window_s = float(args.window)
    spec.soak.start_cold = bool(args.start_cold)
    spec.soak.start_cold_max_s = float(args.start_cold_max)
    spec.validate()
    return spec.to_dict()


def _check(args: argparse.Namespace) -> None:
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


def run(args: argparse.Namespace) -> int:
    _check(args)
    with connect(args) as client:
        if args.attach:
            run_id, spec = args.attach, _attached_spec(client, args.attach)
        else:
            sha, name = push_model(client, args.model)
            spec = _soak_spec(args, sha, name, push_inputs(client, args))
            run_id = client.start_run(spec)
        try:
            result = _follow(client, run_id, spec)
        except KeyboardInterrupt:
            again = f" (or watch it again: edgebench soak --attach {run_id} {agent_flags(args, client)})"
            interrupted(client, run_id, args, again)
            raise
        raise_bad_input(result)  # nothing stored
        store(args, result, agent_name(client))
        write_json(args, result)
        if args.html:
            _write_html(client, run_id, result, Path(args.html))
    return _finish(result)


def _attached_spec(client: Any, run_id: str) -> dict:
    """The spec of the soak run `run_id`; BadInput for an unknown run or another kind."""
    try:
        rec = client.get_run(run_id)
    except BadInput as exc:
        if str(exc).startswith(f"agent {client.addr} "):  # unreachable, or the token refused
            raise
        raise BadInput(f"no run {run_id} on {client.addr}: {exc}") from None
    spec = rec["spec"] or {}
    if spec.get("kind") != "soak":
        raise BadInput(f"run {run_id} is a {spec.get('kind') or rec['kind']} run, not a soak")
    return spec


def _follow(client: Any, run_id: str, spec: dict) -> dict:
    """Show the run's windows live, each once, until its result; the result document."""
    soak = spec.get("soak") or {}
    cursor = Cursor(run_id)
    print(f"soak {run_id} on {client.addr}", flush=True)
    with SoakView(
        float(spec.get("duration_s") or 0), float(soak.get("window_s") or DEFAULT_WINDOW_S)
    ) as view:
        view.resumed(cursor.windows)
        for ev in client.watch(run_id, after_seq=cursor.last_seq):
            kind, payload = ev["kind"], ev["payload"]
            if not cursor.advance(ev["seq"], payload if kind == "window" else None):
                continue
            if kind == "window":
                view.on_window(payload)
            elif kind == "sample":
                view.on_sample(payload)
            elif kind == "phase":
                view.on_phase(str(payload.get("phase")))
            elif kind == "log" and payload.get("message"):
                view.message(str(payload["message"]))
        cursor.save()
    result = final_result(client, run_id)
    cursor.drop()  # the run is over: the result holds every window
    return result


def _write_html(client: Any, run_id: str, result: dict, out: Path) -> None:
    """The HTML report, with the run's plot files fetched from the agent into a
    scratch run directory (a missing one is left out: no meter, no power.bin)."""
    from agent.runs import files  # numpy: paid only when a report is written
    from controller.report.html import write_html

    with tempfile.TemporaryDirectory() as tmp:
        for name in files.PLOT_FILES:
            try:
                client.fetch_file(run_id, name, Path(tmp) / name)
            except EdgebenchError:
                pass
        write_html(result, Path(tmp), out)
    print(f"report: {out}")


def _finish(result: dict) -> int:
    """Print the soak's story; the exit code (a failed run raises its one-line error)."""
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
    if status == "failed":
        raise RunFailed(str(result.get("error") or "run failed"))
    if status != "completed":
        print(f"soak {status}: {result.get('error') or ''}".rstrip(": "), file=sys.stderr)
    else:
        for g in gates_failed(result):
            print(f"gate {g.get('name')} failed: {g.get('message')}", file=sys.stderr)
    print("\n".join(validity_lines(result, color=False)))  # warnings, then the verdict: the last line
    return exit_code_of(result)
