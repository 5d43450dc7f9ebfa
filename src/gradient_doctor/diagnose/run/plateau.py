"""Loss plateau: the loss's trend over the window is smaller than its own noise. With healthy gradient flow and tiny
weight updates everywhere it is the learning rate (`increase_lr`), not vanishing gradients: those show as a gap
*between* layers, and when they are there they explain the plateau.

    >>> f = loss_plateau(history)[0]                  # a healthy net trained with lr 1e-7
    >>> f.severity, f.remedies[0], f.evidence["weight_movement"]
    ('warning', 'increase_lr', 3.1e-06)
"""

from __future__ import annotations

import math

import numpy as np

from ...record.history import History, finite_median
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from .dead_units import dead_units
from .loss_trend import loss_trend
from .saturation import saturated_activation
from .series import rounded
from .vanishing import vanishing_gradient

#: Flat: the robust line's change over the whole window is at most one noise standard deviation
#: (PLATEAU_SIGMAS): the loss moved less than a typical step-to-step wobble.
PLATEAU_SIGMAS = 1.0
#: Stuck (warning): the window also ends less than two noise standard deviations below the run's starting level
#: (PROGRESS_SIGMAS; the difference of two medians of a few noisy losses has a spread below one): it never
#: improved. A flat loss after real progress is `info` (converged, or stuck higher than it could reach: the record
#: cannot tell).
PROGRESS_SIGMAS = 2.0
#: A plateau needs at least this many finite losses in the window: over fewer steps a loss that is learning slowly
#: looks flat against its batch-to-batch noise (measured on the benchmark zoo's dev split: Adam 1e-4 and SGD 1e-2
#: runs that train were flat within their noise over 10-20 steps, not over 30).
MIN_POINTS = 30
#: Weight movement: per trainable layer, the median relative update ‖Δw‖/‖w‖ times the steps the window spans (an
#: upper bound on how far the weights moved, relative to their size). Below 1 % for every layer, the network
#: is practically the one the window started with: the steps are too small, raise the learning rate.
TINY_MOVEMENT = 0.01
#: A typical healthy relative update per step, ‖Δw‖/‖w‖ of the median layer: the suggested learning-rate factor is the
#: smallest power of ten that brings the median layer's per-step relative update up to it. Stanford's CS231n notes
#: ("Babysitting the learning process") give ~1e-3 as a rule of thumb; measured over the first 30 steps of the
#: benchmark zoo's 32 healthy controls (MLPs, CNNs, RNN/LSTM/GRU, transformers; SGD, momentum, Adam, AdamW) it is
#: 2.3e-3 to 8e-2, median 1.7e-2: 1e-3 is below every healthy run, and sized by it the factor left plateaued runs
#: 10x short (a GRU under SGD+momentum at lr 1e-7: x1e5 trains it to 0.80 accuracy, x1e6 to 0.93, its healthy
#: twin's). Hence 1e-2, the power of ten nearest that median. The median layer, not the most-moving one: the rule
#: is about the typical layer. A factor that overshoots is what the guard's divergence rollback is for.
TYPICAL_STEP = 1e-2
#: Rules whose findings explain a flat loss (the gradient does not reach, or does not pass, some layers): the plateau
#: takes the remedies of the first one that has a warning or critical finding on the same window.
CAUSES = (vanishing_gradient, saturated_activation, dead_units)


def loss_plateau(h: History) -> list[Finding]:
    """A warning when the loss is flat within its noise and still at its starting level, info when flat after
    progress. Remedies follow the cause: a finding of one of the CAUSES rules on the same window (vanishing
    gradient, saturation, dead units) explains the flat loss and lends its remedies; else tiny weight movement
    (TINY_MOVEMENT) means the learning rate is too small; else the weights move and the loss does not."""
    trend = loss_trend(h)
    if trend is None or trend.points < MIN_POINTS or not abs(trend.drift) <= PLATEAU_SIGMAS * trend.noise:
        return []
    stuck = trend.end >= h.loss_at_start - PROGRESS_SIGMAS * trend.noise
    movement, factor = _movement(h), None
    cause = next((f for rule in CAUSES for f in rule(h) if f.severity != "info"), None)
    flat = f"the loss moved {trend.drift:+.3g} over {trend.points} steps against a noise of {trend.noise:.3g}"
    measured, why = f"{flat}, still at its starting level ({h.loss_at_start:.4g})", {}
    if not stuck:
        remedies = []
    elif cause is not None:
        remedies, measured = cause.remedies, f"{measured}; {cause.kind}: {cause.summary}"
    elif movement is None:  # updates not recorded: the commonest cause first
        remedies = ranked("increase_lr", "insert_norm:batch")
    elif movement < TINY_MOVEMENT:
        remedies, factor = ranked("increase_lr"), lr_factor(_typical_step(h))
        why = {"increase_lr": f"the most-moving layer's relative updates add up to {movement:.2g}× its weight norm "
                              f"(below {TINY_MOVEMENT:.0%}); about ×{factor:g} brings the median layer's step to "
                              f"{TYPICAL_STEP:g} of its norm"}
    else:  # the weights move, the loss does not: steps that overshoot, or poor conditioning
        remedies = ranked("decrease_lr", "insert_norm:batch", "lsuv_init")
        why = {"decrease_lr": f"the weights moved up to {movement:.2g}× their norm and the loss did not"}
    return [Finding(
        kind="loss_plateau", severity="warning" if stuck else "info", scope="run", layers=[],
        evidence={"drift": rounded(trend.drift), "noise": rounded(trend.noise), "start": rounded(trend.start),
                  "end": rounded(trend.end), "run_start": rounded(h.loss_at_start), "points": trend.points,
                  "weight_movement": None if movement is None else rounded(movement), "lr_factor": factor,
                  "explained_by": None if cause is None else cause.kind,
                  "tiny_movement": TINY_MOVEMENT, "plateau_sigmas": PLATEAU_SIGMAS},
        remedies=remedies, rationale=rationale(remedies, measured, why),
        summary=flat
                + (f", still at its starting level ({h.loss_at_start:.4g})" if stuck else ", after earlier progress")
                + (f"; explained by {cause.kind}" if stuck and cause is not None else "")
                + (f"; the most-moving layer's relative updates add up to {movement:.2g}× its weight norm"
                   if stuck and movement else ""),
    )]


def lr_factor(per_step: float) -> float:
    """The smallest power of ten that brings a per-step relative update up to TYPICAL_STEP (at least 10).

    >>> lr_factor(1e-5), lr_factor(7.7e-6), lr_factor(2e-3)
    (1000.0, 10000.0, 10.0)
    """
    if not per_step > 0:
        return 10.0
    return max(10.0, 10.0 ** math.ceil(math.log10(TYPICAL_STEP / per_step) - 1e-9))


def _span(h: History) -> int:
    return int(h.steps[-1] - h.steps[0] + 1)


def _typical_step(h: History) -> float:
    """The median over the trainable layers of their median relative update per step."""
    steps = [m for m in h.median_relative_update()[h.trainable()].tolist() if np.isfinite(m)]
    return finite_median(np.array(steps)) if steps else math.nan


def _movement(h: History) -> float | None:
    """The largest weight movement over the trainable layers, or None when no update was recorded."""
    span = _span(h)
    moves = [m * span for m in h.median_relative_update()[h.trainable()].tolist()]
    moves = [m for m in moves if np.isfinite(m)]
    return max(moves) if moves else None
