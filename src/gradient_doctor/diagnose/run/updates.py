"""Updates too large for the weights: each step rewrites a large share of every layer's weights, so training cannot
accumulate what the gradients say — the learning rate is far too high, whether or not the loss ever turns
non-finite.

    >>> f = large_updates(history)[0]          # AdamW at lr 0.1 on a small transformer
    >>> f.remedies[0], f.evidence["median_relative_update"]
    ('decrease_lr', 0.22)
"""

from __future__ import annotations

import numpy as np

from ...record.history import History
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from .series import median, rounded

#: A layer's step is its median relative update ‖Δw‖/‖w‖ over the window; the run's is the median over the trainable
#: layers (one odd layer, e.g. a zero-initialised one, does not set it). A healthy step is about 1e-3 of the weights
#: (the rule of thumb of Stanford's CS231n notes, the same TYPICAL_STEP the plateau rule's lr factor aims at); above
#: LARGE_STEP = 0.1, a hundred times that, a tenth of every layer is rewritten at each step. Measured on the
#: real-architecture zoo (benchmarks/real): 13 of its healthy controls at their recipes' learning rates 0.0007-0.012; the
#: same models at 100x their learning rate 0.02-0.23 (AdamW: 0.22-0.23).
LARGE_STEP = 0.1
#: A run whose loss already fell below half of where it started is learning despite its large steps: not judged.
KEPT_PROGRESS = 0.5


def large_updates(h: History) -> list[Finding]:
    """A warning when the median trainable layer moves more than LARGE_STEP of its weights per step and the loss has
    not fallen below KEPT_PROGRESS of its starting level."""
    trainable = h.trainable()
    steps = dict(zip([h.layers[i] for i in trainable], h.median_relative_update()[trainable].tolist()))
    steps = {name: step for name, step in steps.items() if np.isfinite(step)}
    if not steps:
        return []
    typical = median(np.array(list(steps.values())))
    finite_loss = h.loss[np.isfinite(h.loss)]
    learning = finite_loss.size and np.isfinite(h.loss_at_start) and h.loss_at_start > 0 and \
        median(finite_loss[-max(1, finite_loss.size // 4):]) < KEPT_PROGRESS * h.loss_at_start
    if not typical > LARGE_STEP or learning:
        return []
    largest = sorted(steps, key=steps.get, reverse=True)
    # where the large steps began: the first recorded step whose median trainable layer moved more than LARGE_STEP
    by_step = (median(row) for row in h.relative_update()[:, trainable])  # NaN (never above) where no update was recorded
    first_step = next((int(step) for step, typical_then in zip(h.steps, by_step) if typical_then > LARGE_STEP), None)
    remedies = ranked("decrease_lr", "clip_grad_norm")
    measured = (f"the median trainable layer moves {typical:.2g} of its weight norm per step (healthy: about 1e-3), "
                f"the largest {steps[largest[0]]:.2g} ({largest[0]})")
    return [Finding(
        kind="large_updates", severity="warning", scope="run", layers=largest[:5],
        evidence={"median_relative_update": rounded(typical),
                  "relative_update": {name: rounded(steps[name]) for name in largest},
                  "threshold": LARGE_STEP, "first_step": first_step, "loss_at_start": rounded(h.loss_at_start),
                  "steps": int(len(h.steps))},
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"{measured}: the learning rate is far too high for these weights",
    )]
