"""Saturated activations: most outputs of a sigmoid/tanh-like layer sit at its bounds, where it passes almost no
gradient (Glorot & Bengio 2010 saw the top sigmoid layer saturate early).

    >>> saturated_activation(measurement)[0].evidence["saturated_frac"]
    {'4': 0.93}
"""

from __future__ import annotations

import math

from ...probe.batch.measurement import Measurement
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from ..thresholds import SATURATED
from .input_scale import first_input_rms, off_scale


def saturated_activation(m: Measurement) -> list[Finding]:
    """One warning naming every saturating activation layer with more than half its outputs saturated."""
    hit = {layer.name: round(layer.saturated_frac, 4) for layer in m.layers
           if math.isfinite(layer.saturated_frac) and layer.saturated_frac > SATURATED}
    if not hit:
        return []
    worst = max(hit, key=hit.get)
    kind = next(layer.kind for layer in m.layers if layer.name == worst)
    inputs = off_scale(first_input_rms(m))  # then the first layer's saturation starts at the inputs
    remedies = ranked(*(("normalize_inputs",) if inputs else ()),
                      "xavier_init", "lsuv_init", "insert_norm:batch", "swap_activation:relu")
    return [Finding(
        kind="saturated_activation", severity="warning", scope="depth", layers=list(hit),
        evidence={"saturated_frac": hit, "threshold": SATURATED},
        remedies=remedies,
        summary=f"{len(hit)} activation layer(s) have more than {SATURATED:.0%} of outputs saturated",
        rationale=rationale(remedies, f"{hit[worst]:.0%} of layer {worst}'s {kind} outputs saturated",
                            {"normalize_inputs": f"the inputs' root mean square is {first_input_rms(m):.3g}"} if inputs else None),
    )]
