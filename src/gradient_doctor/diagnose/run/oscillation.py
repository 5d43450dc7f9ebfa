"""Loss oscillation: the loss zigzags across its own local level step after step — the steps overshoot back and
forth across a valley — by a swing that matters against that level, without rising (rising is divergence).

    >>> f = loss_oscillation(history)[0]   # logistic regression, full-batch GD at lr 60 ≈ 2.4 × 2/λ_max
    >>> f.kind, f.evidence["crossing_share"], f.evidence["swing"], f.remedies[0]
    ('loss_oscillation', 0.9947, 0.09899, 'decrease_lr')

The loss is detrended by its local level, a centred 2×LEVEL_STEPS moving average (weights 1/2, 1, ..., 1, 1/2 over
LEVEL_STEPS + 1 losses): symmetric, so a straight or slowly bending trend passes into the level, and its weights'
alternating sum is 0, so a step-to-step zigzag passes entirely into the residual. The zigzag is the lag-1
autocorrelation of the residuals, taken by their signs: the share of consecutive steps on which the loss crosses
its level. Signs, not the Pearson product of the residuals: the few large residuals of the fast first descent
dominate a product sum (measured: a logistic regression bouncing on 98 % of its steps had a Pearson lag-1
autocorrelation between -0.5 and +0.3 over its whole run), and a sign ignores their size.
"""

from __future__ import annotations

import math

import numpy as np

from ...record.history import History
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from .divergence import loss_divergence
from .series import rounded

#: The local level: the centred moving average over LEVEL_STEPS + 1 recorded losses with half weights at the ends.
LEVEL_STEPS = 10
KERNEL = np.r_[0.5, np.ones(LEVEL_STEPS - 1), 0.5] / LEVEL_STEPS
#: Oscillating: the loss crosses its local level on at least 80 % of consecutive recorded steps. White noise around a
#: smooth trend (minibatch noise) crosses on about 54 % (1/2 + arcsin(-ρ0)/π with ρ0 = -0.12, the residuals' lag-1
#: autocorrelation this detrending leaves: NOISE_CROSSING_SHARE; measured 0.54, sd 0.077 at 50 losses), and at least
#: 80 % happened in about 1 of 10,000 simulated noise windows of 50 losses and in none of 20,000 of 80 or more
#: (Gaussian, exponential and Cauchy noise, flat and decaying trends). That is a sign autocorrelation of
#: 1 − 2 × 0.8 = −0.6: strongly negative.
CROSSING_SHARE = 0.8
#: At least MIN_POINTS finite losses in the window (below, noise crosses 80 % too often).
MIN_POINTS = 50
#: The swing — the median of |residual| / local level — must exceed 5 % of the level: the loss bounces by a
#: twentieth of itself every step. Smaller zigzags are routine in full-batch training at a large learning rate (the
#: loss still falls on longer time scales, Cohen et al. 2021), and a dead network's loss zigzags in
#: its last float32 digits (measured: 89-97 % crossings at a swing of 6e-8 to 8e-8), which is no finding at all.
SWING = 0.05


def _noise_crossing_share() -> float:
    """1/2 + arcsin(-ρ0)/π: the share of steps on which white Gaussian noise crosses its local level, ρ0 the lag-1
    autocorrelation of the residual filter (identity minus KERNEL). 0.539 for LEVEL_STEPS = 10."""
    residual_filter = -KERNEL.copy()
    residual_filter[LEVEL_STEPS // 2] += 1.0
    rho0 = float(residual_filter[1:] @ residual_filter[:-1] / (residual_filter @ residual_filter))
    return 0.5 + math.asin(-rho0) / math.pi


NOISE_CROSSING_SHARE = _noise_crossing_share()


def loss_oscillation(h: History) -> list[Finding]:
    """A warning when the loss crosses its local level on at least 80 % of its steps by a median swing above 5 % of
    that level; a window the divergence rule flags is left to it, and one whose level is not positive throughout is
    not judged (a swing relative to it means nothing)."""
    loss = h.loss[np.isfinite(h.loss)]
    if loss.size < MIN_POINTS or loss_divergence(h):
        return []
    level = np.convolve(loss, KERNEL, mode="valid")
    residual = loss[LEVEL_STEPS // 2: loss.size - LEVEL_STEPS // 2] - level
    signs = np.sign(residual)
    pairs = (signs[1:] != 0) & (signs[:-1] != 0)
    if not pairs.any() or not (level > 0).all():
        return []
    crossing = float(np.mean(signs[1:][pairs] != signs[:-1][pairs]))
    if crossing < CROSSING_SHARE:
        return []
    swing = float(np.median(np.abs(residual) / level))
    if not swing > SWING:
        return []
    remedies = ranked("decrease_lr", "clip_grad_norm", "insert_norm:batch")
    measured = f"the loss crossed its local level on {crossing:.0%} of {int(pairs.sum())} steps, swinging " \
               f"{swing:.1%} of it"
    return [Finding(
        kind="loss_oscillation", severity="warning", scope="run", layers=[],
        evidence={"crossing_share": rounded(crossing), "swing": rounded(swing),
                  "level": rounded(float(np.median(level))), "points": int(loss.size),
                  "crossing_threshold": CROSSING_SHARE, "noise_crossing_share": rounded(NOISE_CROSSING_SHARE),
                  "swing_threshold": SWING, "level_steps": LEVEL_STEPS},
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"{measured} (median level {np.median(level):.4g}): the steps overshoot back and forth",
    )]

