"""PNG plots of a run with matplotlib (the `[plots]` extra): the HTML report's charts, one at a time.

    >>> fig = run.plot("grad_flow")                 # a matplotlib Figure
    >>> run.plot("heatmap", "grad_heatmap.png")     # also written as PNG
    >>> plot(gd.load("runs/a"), "loss", "loss.png")   # gradient_doctor.report.plots.plot

Kinds: see `KINDS`. The numbers come from `report.data` (the same as the HTML report's); steps where a
metric was not measured are skipped. No pyplot: figures are built directly, so no GUI backend is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidValue
from .data import RunView, binned, line, loss_log_scale, ridge

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..record import RunRecord

KINDS = ("grad_flow", "heatmap", "update_ratio", "saturation", "dead", "loss", "ridge")


def plot(run: "RunRecord", kind: str, path: str | Path | None = None) -> "Figure":
    """A matplotlib Figure of `kind` (one of `KINDS`) for `run`; written as PNG to `path` when given."""
    if kind not in KINDS:
        raise InvalidValue(f"unknown plot kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("run.plot() needs matplotlib: pip install 'gradient-doctor[plots]'") from err
    view = RunView.read(run)
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    _DRAW[kind](view, axes)
    if path is not None:
        figure.savefig(path, format="png", dpi=100)
    return figure


def _grad_flow(view: RunView, ax: "Axes") -> None:
    layers, grad = view.with_values(view.grad_norm)
    rows = view.flow_rows()
    height = 0.8 / max(len(rows), 1)
    for k, row in enumerate(rows):
        values = np.where(grad[row] > 0, grad[row], np.nan)  # a zero has no place on a log axis
        ax.barh(np.arange(len(layers)) + k * height, values, height=height, label=f"step {view.steps[row]}")
    ax.set_xscale("log")
    ax.set_yticks(np.arange(len(layers)) + 0.4 - height / 2, layers)
    ax.invert_yaxis()  # first layer at the top
    ax.set_xlabel("‖g‖ (log scale)")
    ax.set_title("gradient norm per layer")
    if rows:
        ax.legend()


def _heatmap_of(matrix_of: str, caption: str):
    def draw(view: RunView, ax: "Axes") -> None:
        from matplotlib.colors import LogNorm

        layers, values = view.with_values(getattr(view, matrix_of))
        columns, grid = binned(view.steps, values)
        positive = grid[np.isfinite(grid) & (grid > 0)]
        norm = LogNorm(positive.min(), positive.max()) if positive.size else None
        shown = np.where(np.isfinite(grid) & (grid > 0), grid, np.nan)  # 0 and ±inf: "bad", not a colour
        image = ax.imshow(shown, aspect="auto", norm=norm, cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(layers)), layers)
        if columns:
            ax.set_xticks([0, len(columns) - 1], [columns[0], columns[-1]])
        ax.figure.colorbar(image, ax=ax, label=caption)
        ax.set_title(f"{caption} per layer and step")

    return draw


def _fraction_of(matrix_of: str, caption: str):
    def draw(view: RunView, ax: "Axes") -> None:
        layers, values = view.with_values(getattr(view, matrix_of))
        for j, name in enumerate(layers):
            ax.plot(*line(view.steps, values[:, j]), label=name, color=_depth_colour(j, len(layers)))
        ax.set_ylim(0, 1)
        ax.set_xlabel("step")
        ax.set_ylabel(caption)
        ax.set_title(f"{caption} per activation layer" + ("" if layers else ": none measured"))
        if 0 < len(layers) <= 12:
            ax.legend(fontsize="small")

    return draw


def _depth_colour(j: int, n: int):
    from matplotlib import colormaps

    return colormaps["viridis"](0.85 * j / max(n - 1, 1))


def _loss(view: RunView, ax: "Axes") -> None:
    keep = np.isfinite(view.loss)
    ax.plot(*line(view.steps[keep], view.loss[keep]))
    if loss_log_scale(view.loss):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss" + ("" if keep.any() else ": none recorded"))


def _ridge(view: RunView, ax: "Axes") -> None:
    columns, edges, counts = ridge(view.histograms)
    layers = [view.layers[j] for j in columns]
    centres = (edges[:-1] + edges[1:]) / 2
    for k, (name, c) in enumerate(counts.items()):
        for i in range(len(layers)):
            tallest = max(float(part[i].max()) for part in counts.values()) or 1.0
            base = len(layers) - 1 - i
            ax.fill_between(centres, base, base + 1.6 * c[i] / tallest, color=f"C{k}", alpha=0.45,
                            label=name if i == 0 else None)
    ax.set_yticks(range(len(layers)), layers[::-1])
    ax.set_xlabel("log10 |g|")
    ax.set_title("histogram of log10 |g| over each layer's gradient entries" + ("" if layers else ": none recorded"))
    if layers:
        ax.legend(fontsize="small")


_DRAW = {
    "grad_flow": _grad_flow,
    "heatmap": _heatmap_of("grad_norm", "‖g‖"),
    "update_ratio": _heatmap_of("update_ratio", "‖Δw‖/‖w‖"),
    "saturation": _fraction_of("saturated", "saturated fraction"),
    "dead": _fraction_of("dead", "dead fraction"),
    "loss": _loss,
    "ridge": _ridge,
}
