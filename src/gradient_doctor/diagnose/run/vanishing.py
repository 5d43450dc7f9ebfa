"""Vanishing gradient through depth, over a run: the lower layers get gradients orders of magnitude below the upper
layers' *and* their weights move orders of magnitude less ("the parameters of the higher layers change to a great
extent, while the parameters of lower layers barely change").

    >>> vanishing_gradient(history)[0].layers       # a 10-layer sigmoid MLP trained with SGD
    ['0', '2', '4', '6', '8']

Both conditions, because each alone misleads. Gradients alone: an adaptive optimiser (Adam) rescales tiny gradients
into normal-sized steps, so the lower layers still learn. Updates alone: a learning rate that is too small makes
every layer's updates tiny; that is the plateau rule's case (`increase_lr`), not vanishing. Frozen layers (no
gradient, no update) are left out (`History.trainable`).
"""

from __future__ import annotations

import numpy as np

from ...record.history import History, column_medians
from ..finding import Finding
from ..ranking import for_vanishing
from ..rationale import rationale
from ..thresholds import FADE, VANISHING_CRITICAL
from .series import median, rounded

#: A lower layer vanishes when its gradient (RMS per entry, so layers of different sizes compare) and its relative
#: update ‖Δw‖/‖w‖, each the median over the window's recorded steps, are both below e^-3 (FADE) of the upper half
#: of the trainable layers' (the median over them: one odd top layer does not set the scale). Lower layers are the
#: lower half, forward order. e^-3 is the 6ξ trainability limit of depth (Schoenholz et al. 2017), the same
#: ratio `checkup` uses for the backward signal. Critical below 1e-3 (VANISHING_CRITICAL, AUTOTRAINER's vanishing ratio):
#: with those ratios the lower layers learn over 1000x slower than the upper ones.
WARNING = FADE
#: ... and its step per entry (‖Δw‖ RMS) must be below e^-3 of theirs too: a relative update can also be small
#: because the layer's weights are large, while the optimiser moves it as fast as the others (Adam's steps are about
#: lr per entry whatever the gradient's size). That is the weights' scale, not a gradient lost on its way down: a
#: wide first layer at N(0, 5²) behind a LayerNorm (scale-invariant, so its gradient is ∝ 1/‖W‖: Ioffe & Szegedy
#: 2015, §3.3) gets 0.004 of the upper layers' gradient, moves 0.01 as much relative to its weights, and trains
#: normally under Adam. Under SGD a step is lr × gradient, so a vanished gradient is a vanished step as well.
#: What the first remedy rests on, by the recorded activation family (`History.activation_family`).
_FAMILY = {"saturating": "the recorded activations are sigmoid/tanh-like, whose derivative (at most 0.25 for a sigmoid) "
                         "shrinks the gradient at every layer, saturated or not",
           "rectifier": "the recorded activations are mostly rectifiers (ReLU-like)",
           "unknown": "no activation module was recorded"}


def vanishing_gradient(h: History) -> list[Finding]:
    """One finding naming the lower-half trainable layers below the upper half's gradient and relative update by
    e^-3 each. Lookup layers (embeddings) are not compared: only the rows of a batch's tokens get a gradient."""
    sparse = h.sparse_gradient()  # compared per entry they would always look vanishing: left out, and said so
    trainable = [i for i in h.trainable() if i not in sparse]
    if len(trainable) < 2:
        return []
    names = [h.layers[i] for i in trainable]
    rms = h.values["grad_norm"][:, trainable] / np.sqrt(h.numel[trainable])
    grad, update = column_medians(rms), h.median_relative_update()[trainable]
    step = column_medians(h.values["update_norm"][:, trainable] / np.sqrt(h.numel[trainable]))
    upper = len(trainable) // 2  # positions upper.. (forward order) are the upper half, the rest the lower half
    reference_grad, reference_update = median(grad[upper:]), median(update[upper:])
    if not reference_grad > 0:
        return []
    grad_ratio = grad / reference_grad
    with np.errstate(divide="ignore", invalid="ignore"):
        update_ratio = update / reference_update
        step_ratio = step / median(step[upper:])
    # a layer whose updates were not measured is judged on its gradient alone
    hit = [k for k in range(upper) if grad_ratio[k] < WARNING and not update_ratio[k] >= WARNING
           and not step_ratio[k] >= WARNING]
    if not hit:
        return []
    critical = any(grad_ratio[k] < VANISHING_CRITICAL and not update_ratio[k] >= VANISHING_CRITICAL for k in hit)
    lowest = hit[0]
    family = h.activation_family()
    remedies = for_vanishing(family, by_activations=True)
    moves = "does not move at all (its steps round to zero in the weights' dtype)" if update_ratio[lowest] == 0 else \
        f"moves {update_ratio[lowest]:.2g} as much relative to its weights"
    measured = f"layer {names[lowest]} gets {grad_ratio[lowest]:.2g} of the upper layers' gradient (RMS) and " \
               f"{moves} (medians over {len(h.steps)} steps)"
    return [Finding(
        kind="vanishing_gradient", severity="critical" if critical else "warning", scope="depth",
        layers=[names[k] for k in hit],
        evidence={
            "grad_ratio": {names[k]: rounded(grad_ratio[k]) for k in hit},
            "update_ratio": {names[k]: rounded(update_ratio[k]) for k in hit},
            "grad_rms": {names[k]: rounded(grad[k]) for k in range(len(names))},
            "relative_update": {names[k]: rounded(update[k]) for k in range(len(names))},
            "step_rms": {names[k]: rounded(step[k]) for k in range(len(names))},
            "upper_layers": names[upper:], "reference_grad_rms": rounded(reference_grad),
            "reference_relative_update": rounded(reference_update),
            "threshold": WARNING, "critical_below": VANISHING_CRITICAL, "steps": int(len(h.steps)),
            "frozen": [h.layers[i] for i in np.flatnonzero(h.numel > 0) if i not in trainable and i not in sparse],
            "not_compared": [h.layers[i] for i in sparse],  # lookup layers: sparse gradients (History.sparse_gradient)
        },
        remedies=remedies, summary=measured,
        rationale=rationale(remedies, measured, {remedies[0]: _FAMILY[family]}),
    )]
