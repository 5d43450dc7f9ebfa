"""Thresholds that several rules share, checkup's and the run's alike, each with the reason for it; a threshold
only one rule uses stays next to that rule.

    >>> from gradient_doctor.diagnose.thresholds import FADE, VANISHING_CRITICAL
    >>> FADE < 1, VANISHING_CRITICAL
    (True, 0.001)
"""

from __future__ import annotations

#: FADE = e^-3 and GROWTH = e^3: the 6ξ trainability limit (Schoenholz et al. 2017) as a ratio of backward norms, for
#: decay and for growth. Defined with the gradient budget that measures against them (probe/batch/budget.py).
from ..probe.batch.budget import FADE, GROWTH

#: AUTOTRAINER's dying-ReLU threshold: 70 % of a layer's units with zero gradient. Not lower: in a deep
#: rectifier net the representations of different inputs correlate more with every layer (Poole et al. 2016;
#: Schoenholz et al. 2017), so even at He init about half the units of a deep layer can be off for a whole batch
#: (measured up to 56 % in a 20-layer, width-32 He-init ReLU MLP) without being dead. A layer with every unit
#: dead cuts the backward path: critical.
DEAD_WARNING, DEAD_CRITICAL = 0.7, 1.0

#: An output counts as saturated within 1 % of the range from a bound, where the derivative is below 4 % of its
#: peak (probe.layers.SATURATION_EPS). When more than half of a layer's outputs are saturated, most of the
#: gradient arriving there is stopped: the layer is effectively switched off for learning.
SATURATED = 0.5

#: AUTOTRAINER (Zhang et al. 2021) calls a model vanishing when the first/last gradient ratio is below 1e-3
#: (calibrated on 495 Keras models): with plain SGD the first layers then learn > 1000x slower than the last.
VANISHING_CRITICAL = 1e-3

#: A change of the loss matters when it is more than a tenth of the loss's level (and of the progress the run had
#: made before): below that, a rise is within what a learning run's mini-batches and schedule move it by. The
#: exploding rule asks it of the loss before it calls a gradient rise harmful; the divergence rule asks it of the
#: rise itself, since on a flat loss the 10-point noise estimate can be tiny (a post-LN transformer at lr 1e-7 on
#: the zoo's dev split rose +0.013 on 0.74, 1.8 %, yet "3 noise σ": called diverging before it was called a plateau).
LOSS_RISE = 0.1

__all__ = ["DEAD_CRITICAL", "DEAD_WARNING", "FADE", "GROWTH", "LOSS_RISE", "SATURATED", "VANISHING_CRITICAL"]
