"""Dead units: rectifier units that output zero for every sample of the batch, so their incoming weights get no
gradient and cannot recover ("dying ReLU").

    >>> dead_units(measurement)[0].evidence["dead_frac"]
    {'1': 1.0, '3': 1.0}
"""

from __future__ import annotations

import math

from ...probe.batch.measurement import Measurement
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from ..thresholds import DEAD_CRITICAL, DEAD_WARNING

#: A live unit active on half the inputs looks dead on s samples with probability 2^-s; below 8 samples per unit
#: (> 0.4 % chance) a zero column says too little, so the layer is not judged.
MIN_SAMPLES = 8


def dead_units(m: Measurement) -> list[Finding]:
    """One finding naming every rectifier layer with at least 70 % of its units dead on this batch."""
    hit = {layer.name: round(layer.dead_frac, 4) for layer in m.layers
           if math.isfinite(layer.dead_frac) and layer.samples_per_unit >= MIN_SAMPLES
           and layer.dead_frac >= DEAD_WARNING}
    if not hit:
        return []
    worst = max(hit, key=hit.get)
    remedies = ranked("zero_biases", "he_init", "swap_activation:leaky_relu", "insert_norm:batch")
    return [Finding(
        kind="dead_units", severity="critical" if max(hit.values()) >= DEAD_CRITICAL else "warning", scope="depth",
        layers=list(hit),
        evidence={"dead_frac": hit, "threshold": DEAD_WARNING,
                  "samples_per_unit": min(layer.samples_per_unit for layer in m.layers if layer.name in hit)},
        remedies=remedies,
        summary=f"{len(hit)} rectifier layer(s) have at least {DEAD_WARNING:.0%} of units zero on every sample",
        rationale=rationale(remedies, f"{hit[worst]:.0%} of layer {worst}'s units zero on every sample of the batch"),
    )]
