"""Dead units over a run: a rectifier layer with most of its units zero for every sample, on every recorded step of
the window's later half — dead, not merely off for one batch ("dying ReLU").

    >>> dead_units(history)[0].evidence["dead_frac_min"]
    {'1': 1.0, '3': 1.0}
"""

from __future__ import annotations

import numpy as np

from ...record.history import History
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from ..thresholds import DEAD_CRITICAL, DEAD_WARNING
from .series import median, rounded

#: A layer is judged on the smallest of its per-step dead fractions over the later half of its recorded steps in
#: the window (at least MIN_POINTS): a unit dead across those steps is dead on each, so that minimum bounds the truly
#: dead share from above, and "at least 70 % dead on every recorded step since mid-window" is the sustained form of
#: `checkup`'s per-batch rule (DEAD_WARNING 0.7, AUTOTRAINER's dying-ReLU share; DEAD_CRITICAL 1.0: no gradient passes the
#: layer). The later half, not the whole window: units die during training (one large step pushes their biases
#: down) and stay dead, so the steps before they died say nothing about now.
MIN_POINTS = 3


def dead_units(h: History) -> list[Finding]:
    """One finding naming every rectifier layer with at least 70 % of its units dead on each recorded step."""
    dead = h.values["dead_frac"]
    columns = [i for i in range(len(h.layers)) if np.isfinite(dead[:, i]).sum() >= MIN_POINTS]
    lowest = {i: float(np.min(_later_half(dead[:, i]))) for i in columns}
    hit = [i for i in columns if lowest[i] >= DEAD_WARNING]
    if not hit:
        return []
    worst = max(hit, key=lambda i: lowest[i])
    remedies = ranked("zero_biases", "he_init", "swap_activation:leaky_relu", "insert_norm:batch")
    measured = f"{lowest[worst]:.0%} of layer {h.layers[worst]}'s units dead on every recorded step since mid-window"
    return [Finding(
        kind="dead_units", severity="critical" if max(lowest[i] for i in hit) >= DEAD_CRITICAL else "warning",
        scope="depth", layers=[h.layers[i] for i in hit],
        evidence={"dead_frac_min": {h.layers[i]: rounded(lowest[i]) for i in hit},
                  "dead_frac_median": {h.layers[i]: rounded(median(dead[:, i])) for i in hit},
                  "threshold": DEAD_WARNING, "steps": int(len(h.steps))},
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"{len(hit)} rectifier layer(s) have at least {DEAD_WARNING:.0%} of units zero on every sample of every "
                f"recorded step of the later half of {len(h.steps)} steps",
    )]


def _later_half(series: np.ndarray) -> np.ndarray:
    """The later half (at least MIN_POINTS) of a series' finite values."""
    values = series[np.isfinite(series)]
    return values[-max(MIN_POINTS, (len(values) + 1) // 2):]
