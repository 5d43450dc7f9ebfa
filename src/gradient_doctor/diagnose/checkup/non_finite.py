"""Non-finite values (inf/NaN) in weights, inputs, activations, gradients or the loss, located at the first place
found.

    >>> non_finite(measurement)[0].evidence
    {'where': 'weights', 'first': '2', 'layers': {'2': ['weights', 'activations', 'gradients'], ...}}
"""

from __future__ import annotations

import math

from ...probe.batch.measurement import Measurement
from ..finding import Finding
from ..ranking import init_for, ranked
from ..rationale import rationale
from .attribution import activation_family

#: Any inf/NaN is critical: one step spreads it to every later output and every earlier gradient. The cause is
#: where it shows first: weights first, then the model's inputs (the first layer's input), then forward order of
#: activations, then gradients.
_ORDER = ("weights", "activations", "gradients")


def non_finite(m: Measurement) -> list[Finding]:
    """One critical finding naming the layers where inf/NaN first appears (all layers with non-finite weights,
    else the first layer when its input is not finite (`check_inputs`), else the first layer with non-finite outputs
    or gradients), or the loss."""
    init = init_for(activation_family(m.layers))
    found = {layer.name: list(layer.nonfinite) for layer in m.layers if layer.nonfinite}
    for where in _ORDER:
        layers = [name for name, places in found.items() if where in places]
        if where == "activations" and m.layers and "inputs" in m.layers[0].nonfinite:
            # the first layer's input is not finite: the data itself, before any layer
            return [_finding("inputs", [m.layers[0].name], found, ranked("check_inputs"))]
        if layers:
            layers = layers if where == "weights" else layers[:1]
            remedies = ranked(init) if where == "weights" else ranked("clip_grad_norm", init, "lsuv_init")
            return [_finding(where, layers, found, remedies)]
    if not math.isfinite(m.loss):
        return [_finding("loss", [], found, ranked("clip_grad_norm", init))]
    return []


def _finding(where: str, layers: list[str], found: dict, remedies: list[str]) -> Finding:
    summary = f"inf/NaN in the {where}" + (f" of {', '.join(layers)}" if layers else "")
    return Finding(
        kind="non_finite", severity="critical", scope="depth", layers=layers,
        evidence={"where": where, "first": layers[0] if layers else None, "layers": found},
        remedies=remedies,
        summary=summary, rationale=rationale(remedies, summary),
    )
