"""The loss's trend over the window, measured against its own noise: what the plateau and divergence rules judge.

    >>> t = loss_trend(history)
    >>> t.drift, t.noise        # the robust line's change over the window, and the spread around that line
    (-0.002, 0.041)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...record.history import History, finite_median
from .series import head, noise, robust_line, tail

#: Fewer finite losses than this in the window give no trend: the rules stay silent.
MIN_POINTS = 10
#: The window's start and end levels are the medians of its first and last quarter of losses (at least this many).
EDGE_POINTS = 5


@dataclass(frozen=True)
class Trend:
    drift: float  # Theil–Sen slope × the steps the window spans: how much the loss's line rose (+) or fell (-)
    noise: float  # 1.4826 × MAD of the residuals around that line: the loss's own step-to-step spread
    start: float  # median of the window's first quarter of losses
    end: float  # median of its last quarter
    points: int  # finite losses in the window


def loss_trend(h: History) -> Trend | None:
    """The loss's Theil–Sen trend and noise over the window, or None with fewer than MIN_POINTS finite losses (worked
    out once per History: the plateau and divergence rules both ask)."""
    return h.memo("loss_trend", lambda: _trend(h))


def _trend(h: History) -> Trend | None:
    finite = np.isfinite(h.loss)
    if finite.sum() < MIN_POINTS:
        return None
    steps, loss = h.steps[finite].astype(np.float64), h.loss[finite]
    slope, intercept = robust_line(steps, loss)
    return Trend(
        drift=slope * float(steps[-1] - steps[0]), noise=noise(loss - (intercept + slope * steps)),
        start=finite_median(head(loss, EDGE_POINTS)), end=finite_median(tail(loss, EDGE_POINTS)),
        points=int(finite.sum()),
    )
