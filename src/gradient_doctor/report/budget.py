"""The checkup's sections of the HTML report: the gradient budget waterfall, per-layer signal, the time axis.

    >>> sections = checkup_sections(gd.checkup(model, x).measurement)
    >>> waterfall_figure(diag.measurement, "before: gradient budget", "budget_before")

The waterfall is the budget of `probe/batch/budget.py`: from the first layer's output to the last layer's, each
later layer's log10 backward gain ‖δ_in‖/‖δ_out‖, then the part no layer accounts for (skip connections,
functional ops); the bars sum to log10 of the end-to-end ratio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..probe.batch.budget import _log10
from . import charts
from .page import figure, section, table
from .svg import label

if TYPE_CHECKING:
    from ..probe.batch.measurement import Measurement, TimeStats


def checkup_sections(m: "Measurement") -> list[str]:
    """The budget (waterfall and numbers), the backward signal per layer, and each recurrent module's time axis."""
    b = m.budget
    numbers = table(["", "value"], [
        ["end to end ‖δ‖ ratio", f"{b.first} → {b.last}: {label(b.end_to_end)}"],
        ["log10 end to end", label(_log10(b.end_to_end), "+.3f")],
        ["weight layers (depth)", str(b.depth)],
        ["depth scale ξ (trainable to ≈ 6ξ)", label(b.xi)],
        ["orders from activations / weights / recurrent",
         " / ".join(label(b.by_role[r], "+.2f") for r in ("activation", "weights", "recurrent"))],
        ["not attributed (skips, functional ops)", label(b.remainder, "+.2f")],
        ["loss", m.loss_source],
    ], "budget")
    layers = [layer.name for layer in m.layers]
    signal = charts.bars(layers, {"‖δ_out‖": np.array([layer.delta_out for layer in m.layers]),
                                  "‖∇θ‖": np.array([layer.grad_norm for layer in m.layers])},
                         caption="norm (log scale)", title="backward signal per layer")
    out = [
        section("budget", "Gradient budget", waterfall_figure(m, "orders of magnitude per layer", "budget") + numbers,
                "Each layer's log10 backward gain, from the first layer's output (top) to the last layer's: red "
                "bars lose orders of magnitude, green bars add them; the last bar is the end-to-end ratio."),
        section("gradient-flow", "Backward signal per layer",
                figure(signal, "‖δ_out‖ (gradient at the layer's output) and ‖∇θ‖ (its parameters' gradient)",
                       "grad_flow")),
    ]
    if m.recurrent:
        out.append(section("time", "Gradient through time", "".join(_time_figure(t) for t in m.recurrent),
                           "‖∂L/∂x_t‖ / ‖∂L/∂x_T‖ for a loss on the last step; the dashed line is the memory "
                           "horizon, where the ratio falls below e^-3."))
    return out


def waterfall_figure(m: "Measurement", caption: str, ident: str, x_range: tuple[float, float] | None = None) -> str:
    """The budget waterfall of one checkup as a captioned figure; `x_range` (see `shared_range`) puts several on
    one scale."""
    labels, gains, remainder, total = _waterfall_numbers(m)
    chart = charts.waterfall(labels, gains, remainder=remainder, total=total, caption="log10 gain (orders of magnitude)",
                             title=caption, x_range=x_range)
    return figure(chart, caption, ident)


def shared_range(*measurements: "Measurement") -> tuple[float, float]:
    """One x range that holds the waterfalls of all `measurements` (before and after a treatment)."""
    ranges = [charts.waterfall_range(*_waterfall_numbers(m)) for m in measurements]
    return min(lo for lo, _ in ranges), max(hi for _, hi in ranges)


def _waterfall_numbers(m: "Measurement") -> tuple[list[str], np.ndarray, float, float]:
    """The waterfall's layer names, log10 gains, remainder and end-to-end total (layers after the first)."""
    between = m.layers[1:]
    return ([layer.name for layer in between], np.array([layer.log_gain for layer in between]), m.budget.remainder,
            _log10(m.budget.end_to_end))


def _time_figure(t: "TimeStats") -> str:
    steps = np.arange(1, t.steps + 1, dtype=float)
    horizon = t.steps - t.horizon
    chart = charts.lines({f"{t.name} ({t.kind})": (steps, np.asarray(t.relative, dtype=float))},
                         x_caption="time step t", y_caption="‖∂L/∂x_t‖ / ‖∂L/∂x_T‖", log_y=True,
                         markers=[(horizon, f"memory horizon: {t.horizon} steps")])
    return figure(chart, f"{t.name} ({t.kind}, {t.steps} steps): gradient at each step's input", f"time_{t.name}")

