"""Inputs off scale: what the first weight layer receives is far from unit scale, so its pre-activations are off
the scale its initialisation assumes (LeCun et al. 1998, "Efficient BackProp": standardise the inputs).

    >>> input_scale(measurement)[0].evidence["input_rms"]      # raw 0-255 pixels into a Linear
    118.4

Judged on the first layer with parameters (forward order), from the root mean square of its floating-point input;
not when that layer is a normalisation layer (it rescales whatever comes) or its input is not floating point
(token ids into an embedding). After `normalize_inputs` the first layer receives standardised inputs, so the
finding goes away on the treated model.
"""

from __future__ import annotations

import math

from ...probe.batch.measurement import Measurement
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale

#: The root mean square of the first layer's input entries (mean² + variance, averaged over features) outside
#: [1e-2, 10]. Inits
#: assume inputs of unit scale: at RMS 10 a default-init (U(±1/√fan_in)) layer's pre-activations have a standard
#: deviation near 6, where tanh is within 1 % of its bounds on most inputs (it is from |z| > 2.65); at RMS 1e-2 the
#: first layer's weight gradient, proportional to its input, is a hundredth of its scale. Images in [0, 1] (RMS
#: about 0.5) and standardised data (1) are well inside.
LOW, HIGH = 1e-2, 10.0


def off_scale(rms: float) -> bool:
    """Whether inputs of this RMS are outside [LOW, HIGH] (an all-zero or missing input is not judged).

    >>> off_scale(118.4), off_scale(0.5), off_scale(float("nan"))
    (True, False, False)
    """
    return math.isfinite(rms) and rms > 0 and not LOW <= rms <= HIGH


def first_input_rms(m: Measurement) -> float:
    """RMS of the floating-point input of the first layer with parameters; NaN when it normalises or has none.

    >>> first_input_rms(measurement)
    118.4
    """
    first = next((layer for layer in m.layers if layer.role != "activation"), None)
    return math.nan if first is None or first.normalizes else first.rms_in


def input_scale(m: Measurement) -> list[Finding]:
    """A warning when the first weight layer's input RMS is outside [1e-2, 10]."""
    rms = first_input_rms(m)
    if not off_scale(rms):
        return []
    first = next(layer.name for layer in m.layers if layer.role != "activation")
    remedies = ranked("normalize_inputs")
    side = "above" if rms > HIGH else "below"
    measured = f"the inputs' root mean square is {rms:.3g} at layer {first}, {side} the [{LOW:g}, {HIGH:g}] inits assume"
    return [Finding(
        kind="input_scale", severity="warning", scope="depth", layers=[first],
        evidence={"input_rms": float(f"{rms:.6g}"), "low": LOW, "high": HIGH},
        remedies=remedies, rationale=rationale(remedies, measured), summary=measured,
    )]
