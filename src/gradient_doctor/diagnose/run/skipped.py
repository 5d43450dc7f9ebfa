"""Skipped optimizer steps: `torch.amp.GradScaler` skips `optimizer.step()` when it finds inf/NaN gradients while
unscaling, halves its scale and goes on. A few skips are routine (the first iterations bring the scale down from
2^16 to where the gradients fit; then one skip per `growth_interval` at most) and never a finding: the skipped
gradients reach no step of the record, so no other rule sees them either. Persistent skips are a finding: the
gradients overflow even at the reduced scale, or are NaN every time.

    >>> persistent_skips(history)[0].evidence["skipped_fraction"]
    0.6
"""

from __future__ import annotations

import numpy as np

from ...record.history import History
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from .series import rounded

#: Warning when more than a quarter of the window's iterations (steps + skipped) were skipped, critical above half:
#: far beyond the few skips of a healthy run (a handful at its start, then at most one per growth interval of
#: 2000 iterations), and at half the scaler can no longer keep up with the halving.
WARNING, CRITICAL = 0.25, 0.5
#: At least MIN_ITERATIONS iterations in the window, so that the start-up skips do not make a fraction.
MIN_ITERATIONS = 20


def persistent_skips(h: History) -> list[Finding]:
    """A non_finite finding when GradScaler skipped more than a quarter of the window's iterations."""
    if h.skipped is None or not len(h.steps):
        return []
    skipped = float(np.sum(h.skipped))
    iterations = len(h.steps) + skipped
    fraction = skipped / iterations
    if iterations < MIN_ITERATIONS or not fraction > WARNING:
        return []
    with_skips = h.steps[h.skipped > 0]
    remedies = ranked("decrease_lr", "clip_grad_norm")
    measured = f"GradScaler skipped {int(skipped)} of {int(iterations)} iterations ({fraction:.0%})"
    return [Finding(
        kind="non_finite", severity="critical" if fraction > CRITICAL else "warning", scope="run", layers=[],
        evidence={"skipped": int(skipped), "iterations": int(iterations), "skipped_fraction": rounded(fraction),
                  "first_step_after_skips": int(with_skips[0]), "last_step_after_skips": int(with_skips[-1]),
                  "threshold": WARNING, "critical_above": CRITICAL},
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"{measured}: the gradients are inf/NaN even at the reduced loss scale",
    )]
