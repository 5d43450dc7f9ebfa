"""Vanishing and exploding gradient through time, per recurrent module.

    >>> through_time(measurement)
    [Finding(kind='vanishing_gradient', severity='critical', scope='time', layers=['rnn'], ...)]

Time is depth with shared weights: the weight gradient is a sum over steps, and a dependency k steps back
contributes in proportion to ‖∂L/∂x_{T-k}‖. Where that falls below the input dtype's resolution (float32: 1.2e-7)
relative to the last step, the contribution is rounded away in the sum: no optimiser can learn from those steps.
"""

from __future__ import annotations

import numpy as np

from ...probe.batch.measurement import Measurement, TimeStats
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from ..thresholds import FADE, GROWTH
from .exploding import CRITICAL as EXPLODING_CRITICAL

VANISHING_REMEDIES = {
    "RNN": ("to_lstm", "to_gru", "orthogonal_init", "reduce_depth"),
    "LSTM": ("forget_gate_bias", "orthogonal_init", "reduce_depth"),
    "GRU": ("forget_gate_bias", "orthogonal_init", "reduce_depth"),
}


def through_time(m: Measurement) -> list[Finding]:
    """Per recurrent module: critical vanishing when the gradient from the last step falls below the dtype's
    resolution before the first step; info when it only fades below e^-3 (the 6ξ limit, FADE) within the sequence
    (the memory horizon is shorter than the sequence: longer dependencies are hard to learn, Hochreiter &
    Schmidhuber 1997). Exploding when an earlier step's gradient exceeds the last step's e^3 times (the 6ξ limit for
    growth; warning) or 70 times (AUTOTRAINER; critical), the growth Pascanu et al. (2013) clip."""
    return [f for t in m.recurrent for f in (_vanishing(t), _exploding(t)) if f is not None]


def _evidence(t: TimeStats) -> dict:
    return {"steps": t.steps, "memory_horizon": t.horizon, "horizon_fraction": FADE,
            "resolution_horizon": t.resolution_horizon, "resolution": t.eps,
            "first_step_ratio": float(t.relative[0]), "mechanism": "recurrence"}


def _vanishing(t: TimeStats) -> Finding | None:
    if t.horizon >= t.steps - 1:
        return None
    lost = t.resolution_horizon < t.steps - 1
    summary = (f"the gradient from the last step falls below {FADE:.2g} of its size after {t.horizon} steps back"
               + (f" and below the dtype's resolution ({t.eps:.2g}) after {t.resolution_horizon}: earlier steps "
                  "cannot be learned from" if lost else f"; the sequence has {t.steps}"))
    remedies = ranked(*VANISHING_REMEDIES[t.kind])
    measured = f"the gradient at the first of {t.steps} steps of {t.name} is {t.relative[0]:.2g} of the last step's"
    horizon = f"its memory horizon is {t.horizon} of {t.steps} steps"
    return Finding(kind="vanishing_gradient", severity="critical" if lost else "info", scope="time",
                   layers=[t.name], evidence=_evidence(t), remedies=remedies, summary=summary,
                   rationale=rationale(remedies, measured, {remedies[0]: horizon}))


def _exploding(t: TimeStats) -> Finding | None:
    earlier = t.relative[:-1]
    peak = float(np.nanmax(earlier)) if earlier.size and not np.isnan(earlier).all() else float("nan")
    if not peak > GROWTH:
        return None
    remedies = ranked("clip_grad_norm", "orthogonal_init")
    summary = f"an earlier step of {t.name} gets {peak:.3g}x the last step's gradient"
    return Finding(kind="exploding_gradient", severity="critical" if peak > EXPLODING_CRITICAL else "warning",
                   scope="time", layers=[t.name], evidence={**_evidence(t), "peak_ratio": peak},
                   remedies=remedies, summary=summary, rationale=rationale(remedies, summary))
