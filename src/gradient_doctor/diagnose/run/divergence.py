"""Loss divergence: the loss's trend over the window rises by more than its own noise allows.

    >>> loss_divergence(history)[0].evidence["drift"], loss_divergence(history)[0].evidence["noise"]
    (3.7, 0.12)
"""

from __future__ import annotations

import math

from ...record.history import History
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from ..thresholds import GROWTH, LOSS_RISE
from .loss_trend import Trend, loss_trend
from .series import rounded

#: Rising: the robust line climbs by more than 3 noise standard deviations over the window (a rise that size is
#: not a wobble), and the last quarter's level is above the first's by more than LOSS_RISE (thresholds.py) of the
#: first's level and of the progress the run had made before the window (a rise of 1.8 % on a flat loss is not a
#: divergence, however quiet the loss: the noise of 10 losses can be tiny). Critical when the loss ends above e^3 ≈ 20
#: times its starting level (GROWTH, the growth limit the gradient rules use) for a positive loss.
DIVERGE_SIGMAS = 3.0


def loss_divergence(h: History) -> list[Finding]:
    """A warning when the loss rises beyond its noise, critical when it also grew e^3-fold; non-finite losses are
    the non_finite rule's."""
    trend = loss_trend(h)
    if trend is None:
        return []
    least = _matters(h, trend)
    if not (trend.drift > DIVERGE_SIGMAS * trend.noise and trend.end > trend.start + least):
        return []
    critical = trend.start > 0 and trend.end > GROWTH * trend.start
    remedies = ranked("decrease_lr", "clip_grad_norm", "insert_norm:batch")
    measured = f"the loss rose {trend.drift:+.3g} over {trend.points} steps against a noise of {trend.noise:.3g}"
    return [Finding(
        kind="loss_divergence", severity="critical" if critical else "warning", scope="run", layers=[],
        evidence={"drift": rounded(trend.drift), "noise": rounded(trend.noise), "start": rounded(trend.start),
                  "end": rounded(trend.end), "points": trend.points, "diverge_sigmas": DIVERGE_SIGMAS,
                  "least_rise": rounded(least)},
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"{measured} (from {trend.start:.4g} to {trend.end:.4g})",
    )]


def _matters(h: History, trend: Trend) -> float:
    """The smallest rise that matters (see DIVERGE_SIGMAS): LOSS_RISE of the window's starting level and of the
    progress made before it."""
    progress = h.loss_at_start - trend.start if math.isfinite(h.loss_at_start) else 0.0
    return LOSS_RISE * max(abs(trend.start), progress)
