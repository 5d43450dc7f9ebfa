"""Dead units over a run: a rectifier layer with most of its units zero for every sample, on every recorded step of
the window — dead, not merely off for one batch ("dying ReLU").

    >>> dead_units(history)[0].evidence["dead_frac_min"]
    {'1': 1.0, '3': 1.0}
"""

from __future__ import annotations

import numpy as np

from ..finding import Finding
from ..history import History
from ..rationale import rationale
from ..remedies import ranked
from ..rules.dead_units import CRITICAL, WARNING
from .series import median, rounded

#: A layer is judged on the smallest of its per-step dead fractions over the window: a unit dead across the window
#: is dead on each step, so that minimum bounds the truly dead share from above, and "at least 70 % dead on every
#: recorded step" is the sustained form of `checkup`'s per-batch rule (WARNING 0.7, AUTOTRAINER's dying-ReLU share;
#: CRITICAL 1.0: no gradient passes the layer). At least MIN_POINTS recorded steps.
MIN_POINTS = 3


def dead_units(h: History) -> list[Finding]:
    """One finding naming every rectifier layer with at least 70 % of its units dead on each recorded step."""
    dead = h.values["dead_frac"]
    columns = [i for i in range(len(h.layers)) if np.isfinite(dead[:, i]).sum() >= MIN_POINTS]
    lowest = {i: float(np.nanmin(dead[:, i])) for i in columns}
    hit = [i for i in columns if lowest[i] >= WARNING]
    if not hit:
        return []
    worst = max(hit, key=lambda i: lowest[i])
    remedies = ranked("he_init", "swap_activation:leaky_relu", "insert_norm:batch")
    measured = f"{lowest[worst]:.0%} of layer {h.layers[worst]}'s units dead on every one of {len(h.steps)} steps"
    return [Finding(
        kind="dead_units", severity="critical" if max(lowest[i] for i in hit) >= CRITICAL else "warning",
        scope="depth", layers=[h.layers[i] for i in hit],
        evidence={"dead_frac_min": {h.layers[i]: rounded(lowest[i]) for i in hit},
                  "dead_frac_median": {h.layers[i]: rounded(median(dead[:, i])) for i in hit},
                  "threshold": WARNING, "steps": int(len(h.steps))},
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"{len(hit)} rectifier layer(s) have at least {WARNING:.0%} of units zero on every sample of every "
                f"one of {len(h.steps)} steps",
    )]
