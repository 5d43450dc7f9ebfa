"""The names of what the probe measures, and the groups they are measured in.

    >>> LAYER_METRICS.index("grad_norm")
    0

A group is measured together on the same steps, at its own cadence: gradient statistics (and weight
norms) on every `every`-th step, updates on every `update_every`-th, activations on every
`activation_every`-th. Where a metric was not measured, or does not apply, the record holds NaN.
"""

from __future__ import annotations

GRADIENT = ("grad_norm", "grad_max", "grad_zero_frac", "nonfinite", "weight_norm")
UPDATE = ("update_norm",)
ACTIVATION = ("act_mean", "act_std", "saturated_frac", "zero_frac", "dead_frac")

#: Per-layer metrics, in the order of the rows of a step's layer block.
LAYER_METRICS: tuple[str, ...] = GRADIENT + UPDATE + ACTIVATION
#: Per-parameter-tensor metrics, in the order of the rows of a step's parameter block.
PARAM_METRICS: tuple[str, ...] = GRADIENT + UPDATE

GROUPS: dict[str, tuple[str, ...]] = {"gradient": GRADIENT, "update": UPDATE, "activation": ACTIVATION}
