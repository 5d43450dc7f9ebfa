"""What the reports draw from a run, read once: the HTML page and the PNG plots draw the same numbers.

    >>> view = RunView.read(run)
    >>> view.flow_rows()                  # rows of the first, middle and last step with gradient norms
    [0, 499, 999]
    >>> labels, matrix = binned(view.steps, view.grad_norm)   # layers × at most 120 step columns

Steps where a metric was not measured (NaN rows: detail, update and activation metrics come every 50th
step by default) are left out before anything is binned or drawn.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..record import Run

MAX_COLUMNS = 120  # heatmap columns: more recorded steps are binned (median per bin)
RIDGE_BINS = 40


@dataclass
class RunView:
    """The run's per-layer series (steps × layers, forward order) that the reports show."""

    layers: list[str]
    steps: np.ndarray
    grad_norm: np.ndarray
    update_ratio: np.ndarray  # ‖Δw‖ / ‖w‖
    saturated: np.ndarray
    dead: np.ndarray
    loss: np.ndarray  # NaN where no loss was passed to run.step()

    @classmethod
    def read(cls, run: "Run") -> "RunView":
        steps = run.steps
        loss = run.history("loss") if "loss" in run.metrics else np.full(len(steps), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = run.history("update_norm") / run.history("weight_norm")
        return cls(run.layers, steps, run.history("grad_norm"), ratio, run.history("saturated_frac"),
                   run.history("dead_frac"), loss)

    def flow_rows(self, count: int = 3) -> list[int]:
        """Up to `count` rows with gradient norms, evenly spread from the first to the last such step."""
        rows = np.flatnonzero(measured(self.grad_norm))
        if rows.size == 0:
            return []
        picks = np.linspace(0, rows.size - 1, min(count, rows.size)).round().astype(int)
        return [int(rows[p]) for p in dict.fromkeys(picks)]


def measured(matrix: np.ndarray) -> np.ndarray:
    """Rows (steps) of `matrix` with at least one value that is not NaN (inf counts: it was measured)."""
    return ~np.isnan(matrix).all(axis=1) if matrix.size else np.zeros(len(matrix), dtype=bool)


def columns_with_values(matrix: np.ndarray) -> list[int]:
    """Columns (layers) with at least one value that is not NaN: the layers a metric applies to."""
    return [j for j in range(matrix.shape[1]) if not np.isnan(matrix[:, j]).all()]


def binned(steps: np.ndarray, matrix: np.ndarray, max_columns: int = MAX_COLUMNS) -> tuple[list[str], np.ndarray]:
    """(column labels, layers × columns): the measured rows of `matrix` (steps × layers), in at most
    `max_columns` consecutive groups, each the median of its steps (ignoring NaN)."""
    keep = measured(matrix)
    steps, matrix = steps[keep], matrix[keep]
    if len(steps) == 0:
        return [], np.zeros((matrix.shape[1], 0))
    groups = np.array_split(np.arange(len(steps)), min(max_columns, len(steps)))
    labels = [f"step {steps[g[0]]}" if len(g) == 1 else f"steps {steps[g[0]]}–{steps[g[-1]]}" for g in groups]
    with warnings.catch_warnings():  # an all-NaN layer in a group stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        columns = [np.nanmedian(matrix[g], axis=0) if len(g) > 1 else matrix[g[0]] for g in groups]
    return labels, np.stack(columns, axis=1)


def ridge(matrix: np.ndarray, bins: int = RIDGE_BINS) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(edges, {"early steps": counts, "late steps": counts}): per layer, histograms of log10 of the
    layer's value over the measured steps, split into the first and second half of those steps; `counts`
    are layers × bins over shared edges. Zero and non-finite values are left out."""
    rows = matrix[measured(matrix)]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.where(rows > 0, rows, np.nan))
    finite = logs[np.isfinite(logs)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high - low < 0.5:
        low, high = low - 0.25, high + 0.25
    edges = np.linspace(low, high, bins + 1)
    half = (len(logs) + 1) // 2
    out = {}
    for name, part in (("early steps", logs[:half]), ("late steps", logs[half:])):
        out[name] = np.stack([np.histogram(part[:, j][np.isfinite(part[:, j])], edges)[0]
                              for j in range(matrix.shape[1])]) if matrix.shape[1] else np.zeros((0, bins))
    return edges, out
