"""Weights collapsing over a run: a layer's weight norm decays toward 0 (a seed sign of vanishing gradients: with
weights shrinking, every layer's backward factor shrinks with them; strong weight decay does it too).

    >>> weights_collapsing(history)[0].evidence["ratio"]
    {'0': 0.012, '2': 0.011}
"""

from __future__ import annotations

import numpy as np

from ...record.history import History, finite_median
from ..finding import Finding
from ..ranking import init_for, ranked
from ..rationale import rationale
from ..thresholds import FADE, VANISHING_CRITICAL
from .series import head, rounded, tail

#: Each trainable layer is compared with itself: the median of the last quarter of its weight norms in the window
#: over the median of the first quarter (each at least EDGE_POINTS values). Below e^-3 (FADE: 95 % of the norm gone,
#: the same fraction as the 6ξ limit of depth) is a warning; below 1e-3 (three orders of magnitude) critical.
#: Healthy training moves a layer's norm by tens of percent, not by a factor of 20.
WARNING = FADE
EDGE_POINTS = 3


def weights_collapsing(h: History) -> list[Finding]:
    """One finding naming the trainable layers whose weight norm fell below e^-3 of its early level."""
    norms = h.values["weight_norm"]
    ratios = {}
    for i in h.trainable():
        if np.isfinite(norms[:, i]).sum() < 2 * EDGE_POINTS:  # the two ends must not share values
            continue
        early, late = finite_median(head(norms[:, i], EDGE_POINTS)), finite_median(tail(norms[:, i], EDGE_POINTS))
        if early > 0:
            ratios[h.layers[i]] = (float(late / early), float(early))
    hit = {name: ratio for name, ratio in ratios.items() if ratio[0] < WARNING}
    if not hit:
        return []
    worst = min(hit, key=lambda name: hit[name][0])
    ratio, early = hit[worst]
    remedies = ranked("decrease_weight_decay", init_for(h.activation_family()), "insert_norm:batch")
    measured = f"layer {worst}'s weight norm fell to {ratio:.2g} of its early level ({early:.3g}) over " \
               f"{len(h.steps)} steps"
    return [Finding(
        kind="weights_collapsing", severity="critical" if ratio < VANISHING_CRITICAL else "warning", scope="run",
        layers=list(hit),
        evidence={"ratio": {name: rounded(r) for name, (r, _) in hit.items()},
                  "early_norm": {name: rounded(early) for name, (_, early) in hit.items()},
                  "threshold": WARNING, "critical_below": VANISHING_CRITICAL, "steps": int(len(h.steps))},
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"the weight norm of {len(hit)} layer(s) fell to {ratio:.2g} of its early level over "
                f"{len(h.steps)} steps",
    )]
