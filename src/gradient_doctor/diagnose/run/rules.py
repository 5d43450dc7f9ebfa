"""The rules `run.diagnose()` applies, each a pure function `History -> list[Finding]` over a window of the run's
record, in its own module with its thresholds and their reasons next to them (docs/diagnose.md collects them).

    >>> findings = [f for rule in RUN_RULES for f in rule(read_history(run))]
"""

from .dead_units import dead_units
from .divergence import loss_divergence
from .exploding import exploding_gradient
from .non_finite import non_finite
from .oscillation import loss_oscillation
from .plateau import loss_plateau
from .saturation import saturated_activation
from .skipped import persistent_skips
from .time import through_time
from .updates import large_updates
from .vanishing import vanishing_gradient
from .weights import weights_collapsing

RUN_RULES = (
    non_finite, persistent_skips, vanishing_gradient, through_time, exploding_gradient, saturated_activation,
    dead_units, weights_collapsing, large_updates, loss_plateau, loss_divergence, loss_oscillation,
)

__all__ = ["RUN_RULES"]
