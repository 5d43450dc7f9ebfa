"""Vanishing gradient through time, over a run: for a recurrent layer, the training loss's gradient at the first
step of the input sequence against the last (`time_ratio`, recorded with the activation statistics).

    >>> through_time(history)[0].layers, through_time(history)[0].scope
    (['rnn'], 'time')

Time is depth with shared weights: the weight gradient sums the steps' contributions, and an input t steps back
contributes in proportion to ‖∂L/∂x_t‖ (Hochreiter & Schmidhuber 1997; Pascanu et al. 2013). The ratio is taken
for the loss the run trains on, so it shows the memory only when that loss looks at the sequence's end (the adding
and copy problems, sequence classification): a loss on every step gives every step a direct gradient.
"""

from __future__ import annotations

import numpy as np
import torch

from ...record.history import History
from ..checkup.time import VANISHING_REMEDIES
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from ..thresholds import VANISHING_CRITICAL as RATIO_CRITICAL
from .series import median, rounded

#: Critical when the median ratio over the window is below float32's resolution (1.2e-7, the same limit `checkup`
#: uses): the first steps' contributions are rounded away in the weight gradient's sum, so nothing can be learned
#: from them. Warning below 1e-3, AUTOTRAINER's vanishing ratio (the first steps learn over 1000x slower).
RESOLUTION = float(torch.finfo(torch.float32).eps)
#: At least MIN_POINTS recorded ratios in the window.
MIN_POINTS = 2

def through_time(h: History) -> list[Finding]:
    """One finding per recurrent layer whose first-step gradient is below 1e-3 of its last-step gradient."""
    ratios = h.values.get("time_ratio")
    if ratios is None:
        return []
    findings = []
    for i, name in enumerate(h.layers):
        column = ratios[:, i]
        if np.isfinite(column).sum() < MIN_POINTS:
            continue
        ratio = median(column)
        if not ratio < RATIO_CRITICAL:
            continue
        kind = h.kinds[i] if i < len(h.kinds) else ""
        remedies = ranked(*VANISHING_REMEDIES.get(kind, VANISHING_REMEDIES["RNN"]))
        points = int(np.isfinite(column).sum())
        measured = f"the loss's gradient at the first input step of {name} is {ratio:.2g} of the one at the last " \
                   f"(median over {points} recorded steps)"
        findings.append(Finding(
            kind="vanishing_gradient", severity="critical" if ratio < RESOLUTION else "warning", scope="time",
            layers=[name],
            evidence={"time_ratio_median": rounded(ratio), "time_ratio_last": rounded(column[np.isfinite(column)][-1]),
                      "threshold": RATIO_CRITICAL, "critical_below": RESOLUTION,
                      "points": points, "mechanism": "recurrence"},
            remedies=remedies, rationale=rationale(remedies, measured),
            summary=measured + (": below float32 resolution, the first steps cannot be learned from"
                                if ratio < RESOLUTION else ""),
        ))
    return findings
