"""The names of what the probe measures, and the groups they are measured in.

    >>> LAYER_METRICS.index("grad_norm")
    0

A group is measured together on the same steps, at its own cadence: gradient norms and
non-finite counts on every `every`-th step (one pass over each gradient); the gradient's max |g| and
zero fraction, and the weight norms, on every `detail_every`-th (three more passes over the
gradients and one over the weights); updates on every `update_every`-th; activations on every
`activation_every`-th (with `time_ratio`, ‖∂L/∂x_1‖ / ‖∂L/∂x_T‖ of recurrent layers' input sequences).
Where a metric was not measured, or does not apply, the record holds NaN.
"""

from __future__ import annotations

GRADIENT = ("grad_norm", "nonfinite")
DETAIL = ("grad_max", "grad_zero_frac", "weight_norm")
UPDATE = ("update_norm",)
ACTIVATION = ("act_mean", "act_std", "saturated_frac", "zero_frac", "dead_frac", "time_ratio")

#: Per-layer metrics, in the order of the rows of a step's layer block.
LAYER_METRICS: tuple[str, ...] = GRADIENT + DETAIL + UPDATE + ACTIVATION
#: Per-parameter-tensor metrics, in the order of the rows of a step's parameter block.
PARAM_METRICS: tuple[str, ...] = GRADIENT + DETAIL + UPDATE

GROUPS: dict[str, tuple[str, ...]] = {
    "gradient": GRADIENT, "detail": DETAIL, "update": UPDATE, "activation": ACTIVATION,
}
#: Run-level series (one value per recorded step, next to the loss): inf/NaN entries in the model's floating-point
#: tensor arguments over the step's forward passes (not measured for a torch.compile'd model).
INPUT_NONFINITE = "input_nonfinite"
