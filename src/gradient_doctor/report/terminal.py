"""Rich terminal views of a run.

    >>> from rich import print
    >>> print(summary_table(run))
    >>> print(summary_table(run, since=1000))     # only the steps from 1000 on (the live panel's window)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from rich import box
from rich.table import Table
from rich.text import Text

from .._console import plain_text
from .data import update_ratio

if TYPE_CHECKING:
    from ..record import RunRecord

_BAR_WIDTH = 16
#: The bars span at least this many decades below the largest norm: norms within a factor of 2 look alike, not
#: one full and one empty.
MIN_DECADES = 3.0


class SummaryTable(Table):
    """A rich Table that `print()` shows as text (the terminal's width, or 100 columns off it), and `rich.print`
    or `Console.print` in colour: `print(run.summary())`."""

    def __str__(self) -> str:
        return plain_text(self)


def summary_table(run: "RunRecord", since: int | None = None) -> SummaryTable:
    """Per layer, the latest recorded values: gradient norm on a log bar, update/weight ratio,
    saturated and dead fractions; with `since`, read only the steps from it on (a live view)."""
    steps = run.steps_since(since)
    table = SummaryTable(title=Text(_title(run, steps, since)), title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("layer", no_wrap=True, min_width=6)
    table.add_column("type", no_wrap=True, max_width=12)
    table.add_column("‖g‖ (log scale)", no_wrap=True, min_width=_BAR_WIDTH)
    for header in ("‖g‖", "‖Δw‖/‖w‖", "saturated", "dead"):
        table.add_column(header, justify="right", no_wrap=True)
    if len(steps) == 0:
        return table
    grad = _latest(run.history("grad_norm", since=since))
    ratio = update_ratio({m: _latest(run.history(m, since=since))[None] for m in ("update_norm", "weight_norm")})[0]
    saturated = _latest(run.history("saturated_frac", since=since))
    dead = _latest(run.history("dead_frac", since=since))
    kinds = {info.name: info.kind for info in run.layer_details}
    low, high = _log_range(grad)
    for i, name in enumerate(run.layers):
        table.add_row(
            Text(name), Text(kinds.get(name, "")), _bar(grad[i], low, high), _number(grad[i]),
            _number(ratio[i]), _percent(saturated[i]), _percent(dead[i]),
        )
    return table


def _title(run: "RunRecord", steps: np.ndarray, since: int | None = None) -> str:
    where = run.log_dir or "in memory"
    if len(steps) == 0:
        return f"gradient-doctor run ({where}): no steps recorded yet"
    count = f"{len(steps)} steps, " if since is None else ""
    loss = run.history("loss", since=since) if "loss" in run.metrics else np.array([])
    finite = loss[np.isfinite(loss)]
    tail = f", loss {finite[-1]:.4g}" if finite.size else ""
    return f"gradient-doctor run ({where}): {count}latest step {steps[-1]}{tail}"


def _latest(history: np.ndarray) -> np.ndarray:
    """The last non-NaN value of each column (NaN where a column never had one)."""
    out = np.full(history.shape[1], np.nan)
    for j in range(history.shape[1]):
        column = history[:, j]
        seen = np.flatnonzero(~np.isnan(column))
        if seen.size:
            out[j] = column[seen[-1]]
    return out


def _log_range(values: np.ndarray) -> tuple[float, float]:
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return 0.0, 1.0
    low, high = math.log10(positive.min()), math.log10(positive.max())
    return min(low, high - MIN_DECADES), high


def _bar(value: float, low: float, high: float) -> Text:
    if not np.isfinite(value):
        return Text("non-finite" if not np.isnan(value) else "—", style="bold red" if not np.isnan(value) else "dim")
    if value <= 0:
        return Text("0", style="red")
    fill = (math.log10(value) - low) / (high - low)
    cells = max(1, round(fill * _BAR_WIDTH))
    style = "green" if fill > 0.5 else "yellow" if fill > 0.2 else "red"
    return Text("█" * cells + "·" * (_BAR_WIDTH - cells), style=style)


def _number(value: float) -> str:
    return "—" if np.isnan(value) else f"{value:.2e}"


def _percent(value: float) -> str:
    return "—" if np.isnan(value) else f"{100 * value:.1f}%"
