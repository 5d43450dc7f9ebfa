"""What the reports draw from a run, read once: the HTML page and the PNG plots draw the same numbers.

    >>> view = RunView.read(run)
    >>> view.flow_rows()                  # rows of the first, middle and last step with gradient norms
    [0, 499, 999]
    >>> labels, matrix = binned(view.steps, view.grad_norm)   # layers × at most 120 step columns
    >>> x, y = line(view.steps, view.loss)                    # at most 1000 points (medians of bins)
    >>> columns, edges, series = ridge(view.histograms)       # log10 |g| histograms of 4 sampled detail steps

Steps where a metric was not measured (NaN rows: detail, update and activation metrics come every 50th
step by default) are left out before anything is binned or drawn.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..record.history import History, read_history

if TYPE_CHECKING:
    from ..record import RunRecord
    from ..record.histograms import GradientHistograms

MAX_COLUMNS = 120  # heatmap columns: more recorded steps are binned (median per bin)
MAX_POINTS = 1000  # points per line: more measured steps are binned the same way
RIDGE_STEPS = 4  # detail steps sampled for the ridge plot, first to last


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

    update_norm: np.ndarray  # ‖Δw‖ and ‖w‖, to say which is missing when the ratio is
    weight_norm: np.ndarray
    histograms: "GradientHistograms"  # log10 |g| per layer at the detail steps (run.gradient_histograms())

    @classmethod
    def read(cls, run: "RunRecord") -> "RunView":
        """The whole run, read as the diagnosis reads it (so the ratio is the one its rules judge)."""
        history = read_history(run)
        values = history.values
        return cls(history.layers, history.steps, values["grad_norm"], history.relative_update(),
                   values["saturated_frac"], values["dead_frac"], history.loss, values["update_norm"],
                   values["weight_norm"], run.gradient_histograms())

    def with_values(self, matrix: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(layer names, columns of `matrix`) of the layers a metric applies to (at least one value not NaN)."""
        columns = columns_with_values(matrix)
        return [self.layers[j] for j in columns], matrix[:, columns]

    def ratio_missing(self) -> str:
        """Why there is no ‖Δw‖/‖w‖ to show (empty when there is one)."""
        if measured(self.update_ratio).any():
            return ""
        if not measured(self.update_norm).any():
            return "No ‖Δw‖ recorded: updates need an optimizer and update_every > 0."
        return ("‖Δw‖ was recorded but ‖w‖ was not measured at those steps (weight norms come every detail_every "
                "steps): no ‖Δw‖/‖w‖ to show. Make update_every a multiple of detail_every.")

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


def update_ratio(values: dict[str, np.ndarray]) -> np.ndarray:
    """‖Δw‖/‖w‖ from per-layer `values` ("update_norm", "weight_norm": steps × layers), computed by the diagnosis's
    own `History.relative_update` (NaN where either was not measured or ‖w‖ = 0): the ratio its rules judge."""
    empty = np.zeros(0, dtype=np.int64)
    return History([], empty, empty, values, np.zeros(0), math.nan).relative_update()


def loss_log_scale(loss: np.ndarray) -> bool:
    """Whether to draw the loss on a log axis: all finite values positive and spanning more than 100×."""
    values = loss[np.isfinite(loss)]
    return bool(values.size and (values > 0).all() and values.max() / values.min() > 100)


def binned(steps: np.ndarray, matrix: np.ndarray, max_columns: int = MAX_COLUMNS) -> tuple[list[str], np.ndarray]:
    """(column labels, layers × columns): the measured rows of `matrix` (steps × layers), in at most
    `max_columns` consecutive groups, each the median of its steps (ignoring NaN)."""
    keep = measured(matrix)
    steps, matrix = steps[keep], matrix[keep]
    if len(steps) == 0:
        return [], np.zeros((matrix.shape[1], 0))
    groups, columns = _medians(matrix, max_columns)
    labels = [f"step {steps[g[0]]}" if len(g) == 1 else f"steps {steps[g[0]]}–{steps[g[-1]]}" for g in groups]
    return labels, columns.T


def line(steps: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a line chart: the steps where `values` is not NaN, in at most `max_points` consecutive bins; x is
    each bin's first step, y the median of its values (a bin runs up to the next bin's first step)."""
    keep = ~np.isnan(values)
    steps, values = steps[keep], values[keep]
    if len(steps) <= max_points:
        return steps, values
    groups, medians = _medians(values[:, None], max_points)
    return np.array([steps[g[0]] for g in groups]), medians[:, 0]


def _medians(rows: np.ndarray, count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """`rows` (n × k, n ≥ 1) in min(count, n) consecutive groups: (row indices per group, groups × k medians)."""
    groups = np.array_split(np.arange(len(rows)), min(count, len(rows)))
    with warnings.catch_warnings():  # an all-NaN column in a group stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return groups, np.stack([np.nanmedian(rows[g], axis=0) if len(g) > 1 else rows[g[0]] for g in groups])


def ridge(histograms: "GradientHistograms", count: int = RIDGE_STEPS) -> tuple[list[int], np.ndarray, dict[str, np.ndarray]]:
    """(layer columns, edges, {"step S": counts}): the recorded log10 |g| histograms of up to `count` detail
    steps spread evenly from the first to the last, for the layers that have them; `counts` are
    layers × bins, over the recorded edges cut to the bins any of those counts fills (plus one each side).
    Exact zeros and non-finite entries are in no bin (see `run.gradient_histograms`)."""
    steps, edges, counts = histograms.steps, histograms.edges, histograms.counts
    columns = [j for j in range(counts.shape[1]) if not np.isnan(counts[:, j]).all()]
    if not len(steps) or not columns:
        return [], edges, {}
    picks = list(dict.fromkeys(np.linspace(0, len(steps) - 1, min(count, len(steps))).round().astype(int)))
    chosen = np.nan_to_num(counts[picks][:, columns])
    filled = np.flatnonzero(chosen.sum(axis=(0, 1)))
    first, stop = (max(filled[0] - 1, 0), min(filled[-1] + 2, len(edges) - 1)) if filled.size else (0, len(edges) - 1)
    return columns, edges[first : stop + 1], {f"step {steps[p]}": c[:, first:stop] for p, c in zip(picks, chosen)}
