"""Dead units: rectifier units that output zero for every sample of the batch, so their incoming weights get no
gradient and cannot recover ("dying ReLU").

    >>> dead_units(measurement)[0].evidence["dead_frac"]
    {'1': 1.0, '3': 1.0}
"""

from __future__ import annotations

import math

from ..finding import Finding
from ..rationale import rationale
from ..remedies import ranked
from ..stats import Measurement

#: AUTOTRAINER's dying-ReLU threshold: 70 % of a layer's units with zero gradient. Not lower: in a deep
#: rectifier net the representations of different inputs correlate more with every layer (Poole et al. 2016;
#: Schoenholz et al. 2017), so even at He init about half the units of a deep layer can be off for a whole batch
#: (measured up to 56 % in a 20-layer, width-32 He-init ReLU MLP) without being dead. A layer with every unit
#: dead cuts the backward path: critical.
WARNING, CRITICAL = 0.7, 1.0
#: A live unit active on half the inputs looks dead on s samples with probability 2^-s; below 8 samples per unit
#: (> 0.4 % chance) a zero column says too little, so the layer is not judged.
MIN_SAMPLES = 8


def dead_units(m: Measurement) -> list[Finding]:
    """One finding naming every rectifier layer with at least 70 % of its units dead on this batch."""
    hit = {layer.name: round(layer.dead_frac, 4) for layer in m.layers
           if math.isfinite(layer.dead_frac) and layer.samples_per_unit >= MIN_SAMPLES
           and layer.dead_frac >= WARNING}
    if not hit:
        return []
    worst = max(hit, key=hit.get)
    remedies = ranked("he_init", "swap_activation:leaky_relu", "insert_norm:batch")
    return [Finding(
        kind="dead_units", severity="critical" if max(hit.values()) >= CRITICAL else "warning", scope="depth",
        layers=list(hit),
        evidence={"dead_frac": hit, "threshold": WARNING,
                  "samples_per_unit": min(layer.samples_per_unit for layer in m.layers if layer.name in hit)},
        remedies=remedies,
        summary=f"{len(hit)} rectifier layer(s) have at least {WARNING:.0%} of units zero on every sample",
        rationale=rationale(remedies, f"{hit[worst]:.0%} of layer {worst}'s units zero on every sample of the batch"),
    )]
