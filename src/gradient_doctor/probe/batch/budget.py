"""The gradient budget: end-to-end backward ratio, depth scale ξ, and how the layers' gains add up to it.

    >>> b = gradient_budget(layers)
    >>> b.end_to_end, b.depth, b.xi
    (1.6e-08, 20, 0.56)

Mean-field theory (Schoenholz et al. 2017) has the backward signal's squared norm change as exp(-l/ξ) over l
layers, and finds networks trainable up to a depth of about 6ξ. From one measured ratio r over `depth` layers,
ξ = depth / (2 |ln r|); depth > 6ξ is the same statement as r < e^-3 (or r > e^3 for growth): the squared
signal changed by more than e^6 ≈ 400.
"""

from __future__ import annotations

import math

from .measurement import Budget, LayerStats

#: The 6ξ trainability limit (Schoenholz et al. 2017) as a ratio of backward norms: beyond it, the first layers
#: get less than e^-3 ≈ 5 % of the last layer's signal. Used for depth, and for time (the memory horizon).
FADE = math.exp(-3.0)
#: The same limit for growth: e^3 ≈ 20.
GROWTH = math.exp(3.0)


def gradient_budget(layers: list[LayerStats]) -> Budget:
    """The budget of `layers` (forward order), from the first trainable layer's output — where the first weights get their
    gradient, ∂L/∂W = input ⊗ δ_out — to the last layer's output; the first layer's own gain only scales the
    gradient with respect to the model's input, which trains nothing, and is left out.

    A recurrent layer's gain mixes depth with time (its input gradient sums over every step); its orders are kept
    apart as "recurrent" and taken out of `through_depth`, the ratio the depth rules judge: the time axis judges
    recurrence separately."""
    layers = trainable_from(layers)
    first, last = layers[0], layers[-1]
    end_to_end = first.delta_out / last.delta_out if last.delta_out > 0 else math.nan
    between = layers[1:]
    depth = sum(1 for layer in between if layer.role != "activation")
    by_role = {"activation": 0.0, "weights": 0.0, "recurrent": 0.0}
    for layer in between:
        for role, log_gain in layer.role_gains():
            if not math.isnan(log_gain):
                by_role[role] += log_gain
    total = _log10(end_to_end)
    attributed = sum(by_role.values())
    remainder = total - attributed if math.isfinite(total) and math.isfinite(attributed) else math.nan
    through_depth = end_to_end
    if math.isfinite(by_role["recurrent"]) and by_role["recurrent"] != 0:
        through_depth = end_to_end / 10 ** by_role["recurrent"]
    return Budget(f"{first.name} (output)", f"{last.name} (output)", end_to_end, through_depth, depth,
                  depth_scale(through_depth, depth), by_role, remainder)


def trainable_from(layers: list[LayerStats]) -> list[LayerStats]:
    """`layers` from the first one that got a gradient (forward order): layers before it are frozen (or have no
    weights), so how much gradient would reach them trains nothing. All of them when none got a gradient.

    >>> [layer.name for layer in trainable_from(layers)]      # "0" and "1" frozen, as when fine-tuning
    ['2', '3', '4']
    """
    start = next((i for i, layer in enumerate(layers) if not math.isnan(layer.grad_norm)), 0)
    return layers[start:]


def depth_scale(ratio: float, depth: int) -> float:
    """ξ such that ratio² = exp(-depth/ξ): ξ = depth / (2 |ln ratio|); inf when nothing changed.

    >>> round(depth_scale(math.exp(-3), 12), 3)  # decayed e^-3 over 12 layers: 12 = 6ξ
    2.0
    """
    if not math.isfinite(ratio) or depth == 0:
        return math.nan
    if ratio == 0:
        return 0.0
    log_ratio = abs(math.log(ratio))
    return math.inf if log_ratio == 0 else depth / (2 * log_ratio)


def _log10(value: float) -> float:
    if math.isnan(value):
        return math.nan
    return -math.inf if value == 0 else math.log10(value)
