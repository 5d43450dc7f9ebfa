"""Vanishing gradient through depth: the backward signal reaching the first layer is too small a part of the last.

    >>> vanishing_gradient(measurement)
    [Finding(kind='vanishing_gradient', severity='critical', scope='depth', layers=['1', '3', ...], ...)]
"""

from __future__ import annotations

from ...probe.batch.measurement import Measurement
from ..finding import Finding
from ..ranking import for_vanishing
from ..rationale import rationale
from ..thresholds import FADE, VANISHING_CRITICAL
from .attribution import activation_family, budget_layers, mechanism, orders, top_layers

#: Below e^-3 (FADE) but not two orders of magnitude down (ratio >= MILD) the loss is real but mild: info. PyTorch's
#: default init (U(±1/√fan_in), variance 1/(3 fan_in)) loses about 0.4 orders per ReLU layer and measures 0.03 over
#: four layers, which train well (the benchmark zoo's healthy controls); from two orders down the first layers'
#: steps are a hundredth of the last's under SGD: warning.
MILD = 1e-2


def vanishing_gradient(m: Measurement) -> list[Finding]:
    """Info when the ratio through depth r (Budget.through_depth) < e^-3 (depth > 6ξ, Schoenholz et al. 2017),
    warning when r < 1e-2 (MILD), critical when r < 1e-3 (AUTOTRAINER)."""
    b = m.budget
    r = b.through_depth
    if not r < FADE:  # also False for NaN
        return []
    cause = mechanism(b, sign=-1)
    family = activation_family(m.layers)
    remedies = for_vanishing(family, by_activations=cause == "activation")
    where = {"activation": "activation derivatives", "weights": "weight scale",
             "unattributed": f"operations between the layers that checkup cannot attribute to a module (functional "
                             f"ops, pooling, custom blocks: {-b.remainder:.2f} orders)"}[cause]
    measured = f"the gradient reaching {b.first} is {r:.2g} of the one at {b.last} " \
               f"(depth {b.depth} > 6ξ = {6 * b.xi:.3g} layers)"
    split = f"activation derivatives lose {-b.by_role['activation']:.2f} orders of magnitude, weights " \
            f"{-b.by_role['weights']:.2f}"
    return [Finding(
        kind="vanishing_gradient",
        severity="critical" if r < VANISHING_CRITICAL else "warning" if r < MILD else "info",
        scope="depth",
        layers=top_layers(budget_layers(m.layers), sign=-1),
        evidence={
            "ratio": r, "end_to_end": b.end_to_end, "from": b.first, "to": b.last, "depth": b.depth, "xi": b.xi,
            "trainable_depth_6xi": 6 * b.xi, "mechanism": cause,
            "orders_lost_by_activations": orders(b.by_role["activation"]),
            "orders_lost_by_weights": orders(b.by_role["weights"]),
            "orders_lost_by_recurrent_layers": orders(b.by_role["recurrent"]),
            "orders_unattributed": orders(b.remainder),
        },
        remedies=remedies, rationale=rationale(remedies, measured, {remedies[0]: split}),
        summary=f"{measured}; lost mostly to {where}",
    )]
