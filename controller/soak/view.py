"""The soak's live view: one line per window (kept as history, scrolling above
the live panel on a terminal), and on a terminal a panel with a progress bar,
the current throughput, the hottest zone and the clock of each domain."""

from __future__ import annotations

import sys
from typing import IO, Any

from agent.soak.attribution import hottest


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
