"""Who spends the gradient budget: the layers that lose (or add) most of it, the mechanism, the activation family.

    >>> top_layers(budget_layers(layers), sign=-1)  # the fewest layers accounting for half the orders lost
    ['7', '9', '5']
    >>> mechanism(budget, sign=-1)
    'activation'
"""

from __future__ import annotations

import math
from collections import Counter

from ...probe.batch.budget import trainable_from
from ...probe.batch.measurement import Budget, LayerStats


def budget_layers(layers: list[LayerStats]) -> list[LayerStats]:
    """The layers whose gains make up the depth budget: all but the first (its gain only scales the gradient with
    respect to the model's input) and but recurrent ones (judged on the time axis)."""
    return [layer for layer in trainable_from(layers)[1:] if layer.role != "recurrent"]


def top_layers(layers: list[LayerStats], sign: int) -> list[str]:
    """The fewest layers whose log gains (in the direction `sign`: -1 losses, +1 gains) make up at least half of
    that direction's total, largest first."""
    moves = sorted(
        ((sign * layer.log_gain, layer.name) for layer in layers if sign * layer.log_gain > 0),
        reverse=True,
    )
    if not moves:
        return []
    if math.isinf(moves[0][0]):
        return [name for move, name in moves if math.isinf(move)]
    half, running, chosen = sum(m for m, _ in moves) / 2, 0.0, []
    for move, name in moves:
        chosen.append(name)
        running += move
        if running >= half:
            break
    return chosen


def mechanism(budget: Budget, sign: int) -> str:
    """"activation" when activation derivatives account for more of the change (in direction `sign`) than the
    weight layers, else "weights" — or "unattributed" when what happens between the layers (functional ops such as
    pooling, F.relu or a rescale, skip connections, custom blocks checkup cannot see into) accounts for more than
    either: then the finding says so instead of guessing."""
    activation, weights = (sign * budget.by_role[role] for role in ("activation", "weights"))
    between = sign * budget.remainder if math.isfinite(budget.remainder) else -math.inf
    if between > max(activation, weights):
        return "unattributed"
    return "activation" if activation > weights else "weights"


def activation_family(layers: list[LayerStats]) -> str:
    """The model's dominant activation family: "saturating" (sigmoid, tanh, ...), "rectifier" (ReLU-like and
    smooth non-saturating ones, which He init suits) or "unknown" (no activation modules, e.g. functional ones).
    A weight layer that applies its activation itself (Keras `activation=`) counts as that activation."""
    counts = Counter(
        "saturating" if layer.family == "saturating" else "rectifier"
        for layer in layers
        if layer.family is not None
    )
    return counts.most_common(1)[0][0] if counts else "unknown"


def orders(log_gain: float) -> float:
    """A log10 gain rounded for evidence (orders of magnitude)."""
    return round(log_gain, 2) if math.isfinite(log_gain) else log_gain
