"""`gd.watch(..., live=True)`: a compact rich panel of the layers' gradient bars and the recent findings.

    >>> with gd.watch(model, opt, live=True) as run:
    ...     train(model, opt)          # the panel redraws in place, at most twice a second

The panel reads the record only (SQLite, on the host), never the device: it asks the run to flush at most
`refresh_per_second` times a second (one device→host transfer each, as every flush is; with slow steps that
is at most one per step), redraws after a flush from the steps it has not seen on (the recent window only),
and judges the recent window for findings every `findings_every`-th redraw. When the console is not a
terminal (a log file, a pipe) it draws once, at close, and costs nothing while training. It is a run
listener (see `Run.add_listener`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from ..errors import InvalidValue
from .terminal import summary_table

if TYPE_CHECKING:
    from ..diagnose import Finding
    from ..record import RunRecord

WINDOW = 200  # steps read per redraw: enough for metrics measured every 50th step by default


class LivePanel:
    """A run listener that redraws a rich panel after flushes, at most `refresh_per_second` times a second."""

    def __init__(self, console: Console | None = None, *, refresh_per_second: float = 2.0, findings_every: int = 10,
                 clock: Callable[[], float] = time.monotonic):
        if not refresh_per_second > 0:
            raise InvalidValue(f"LivePanel: refresh_per_second must be > 0, got {refresh_per_second!r}")
        self.interval = 1.0 / refresh_per_second
        self.findings_every = findings_every
        self.clock = clock
        self.redraws = 0
        self._last = -math.inf
        self._latest: int | None = None  # the last recorded step seen
        self._findings: list["Finding"] = []
        console = console or Console()
        self._terminal = console.is_terminal
        # a terminal keeps the panel on screen (cropped: findings come first); a log or pipe gets all of it
        self._live = Live(console=console, auto_refresh=False, transient=False,
                          vertical_overflow="crop" if console.is_terminal else "visible")

    def due(self) -> bool:
        """Whether a redraw is due: the run then flushes now (asked every step; only reads the clock). Never
        on a console that is not a terminal: that gets one drawing, at close."""
        return self._terminal and self.clock() - self._last >= self.interval

    def flushed(self, run: "RunRecord") -> None:
        if self.due():
            self.redraw(run)

    def close(self, run: "RunRecord") -> None:
        try:
            self.redraw(run)
        finally:
            self._live.stop()

    def redraw(self, run: "RunRecord") -> None:
        """Read the recent window from the record and draw it."""
        self._last = self.clock()
        if self.redraws % self.findings_every == 0:
            self._findings = [f for f in run.diagnose(window=WINDOW).findings if f.severity != "info"]
        self.redraws += 1
        if not self._live.is_started:
            self._live.start()
        self._live.update(self.render(run), refresh=True)

    def render(self, run: "RunRecord") -> Panel:
        lines = [Text(f"{f.severity.upper()} {f.kind} ({f.scope}) at {', '.join(f.layers[:4]) or 'the run'}: "
                      f"{f.summary}", style="bold red" if f.severity == "critical" else "yellow")
                 for f in self._findings]
        status = lines or [Text("no warning or critical finding in the recent window", style="green")]
        new = run.steps_since(self._latest)
        self._latest = int(new[-1]) if len(new) else self._latest
        since = None if self._latest is None else self._latest - WINDOW + 1
        return Panel(Group(*status, summary_table(run, since=since)), title="gradient-doctor (live)",
                     title_align="left")
