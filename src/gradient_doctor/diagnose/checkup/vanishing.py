"""Vanishing gradient through depth: the backward signal reaching the first layer is too small a part of the last.

    >>> vanishing_gradient(measurement)
    [Finding(kind='vanishing_gradient', severity='critical', scope='depth', layers=['1', '3', ...], ...)]
"""

from __future__ import annotations

import math

from ...probe.batch.budget import trainable_from
from ...probe.batch.measurement import LayerStats, Measurement
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


def first_scale_reset(layers: list[LayerStats]) -> float:
    """The part of the budget lost at a normaliser right after the first trainable layer that the first layer's own
    forward growth explains (at most 1; 1 when there is none). A normaliser divides δ by its input's RMS, the scale
    the layer below gave it, and that layer's weights multiply δ by about as much on the way down (Ioffe & Szegedy
    2015, §3.3): inside the budget the two cancel. The budget starts at the first layer's output, so the first
    layer's half of the pair is not in it: its weights' scale, not depth, would read as vanishing. A wide first layer
    at N(0, 5²) behind a LayerNorm (the zoo's hard negative: δ ratio 0.005 of which 1/39 at the LayerNorm) trains
    normally; its weight gradient is small because its weights are large (the normaliser makes it scale-invariant).

    >>> first_scale_reset(layers)     # 0: Linear, forward gain 39; 1: LayerNorm, backward gain 0.026
    0.026
    """
    chain = trainable_from(layers)
    if len(chain) < 2 or not chain[1].normalizes:
        return 1.0
    shrink, growth = chain[1].gain, chain[0].forward_gain
    if not (0 < shrink < 1 and math.isfinite(growth) and growth > 1):
        return 1.0
    return max(shrink, 1 / growth)


def vanishing_gradient(m: Measurement) -> list[Finding]:
    """Info when the ratio through depth r (Budget.through_depth) < e^-3 (depth > 6ξ, Schoenholz et al. 2017),
    warning when r < 1e-2 (MILD), critical when r < 1e-3 (AUTOTRAINER)."""
    b = m.budget
    reset = first_scale_reset(m.layers)
    r = b.through_depth / reset
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
            "first_layer_scale_reset": reset,
        },
        remedies=remedies, rationale=rationale(remedies, measured, {remedies[0]: split}),
        summary=f"{measured}; lost mostly to {where}",
    )]
