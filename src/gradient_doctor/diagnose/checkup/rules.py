"""The rules `checkup` applies, each a pure function `Measurement -> list[Finding]` in its own module, with its
thresholds and their reasons next to them (docs/checkup.md collects them).

    >>> findings = [f for rule in RULES for f in rule(measurement)]
"""

from .dead_units import dead_units
from .exploding import exploding_gradient
from .input_scale import input_scale
from .non_finite import non_finite
from .saturation import saturated_activation
from .time import through_time
from .vanishing import vanishing_gradient

RULES = (non_finite, input_scale, vanishing_gradient, exploding_gradient, saturated_activation, dead_units, through_time)

__all__ = ["RULES"]
