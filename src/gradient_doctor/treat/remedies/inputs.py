"""Standardise a model's inputs with the mean and std of a batch, in front of the model.

    >>> model = normalize_inputs(model, inputs=x)      # Sequential(Standardize(...), model)
    >>> model[0].mean.shape == x.shape[1:]
    True

Inputs far from zero mean and unit variance put the first layer's pre-activations off scale (saturated sigmoids,
all-positive ReLU inputs) whatever the init assumes (LeCun et al. 1998, "Efficient BackProp"). Each feature
(every entry of a sample: all dimensions but the batch dimension 0) is shifted by its batch mean and divided by
sqrt(var + 1e-5), the population variance with batch norm's epsilon, so a constant feature maps to 0 instead of
dividing by zero. The standardiser fixes the sample shape: batches of another shape raise a ValueError.

State dict: the model becomes the new root's child "1" (every key gains the prefix "1."); the standardiser's
buffers are "0.mean" and "0.std".
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import InvalidType, InvalidValue, NotApplicable
from ..surgery.inserted import Standardize
from ..surgery.modules import place_like

EPS = 1e-5  # added to the variance, as nn.BatchNorm does
#: A feature whose std on the batch is below this share of the batch's typical std (the root mean of the features'
#: variances) is scaled by the typical std.
DEGENERATE = 0.01


def normalize_inputs(model: nn.Module, *, inputs: Tensor) -> nn.Module:
    """nn.Sequential(Standardize(mean, std), model) with per-feature statistics of the batch `inputs` (a single
    floating-point tensor, batch first, at least 2 samples), on the model's device and dtype. NotApplicable for
    tuple/list/dict batches, integer inputs (token ids) and models that already start with a Standardize.

    >>> normalize_inputs(nn.Sequential(nn.Linear(3, 1)), inputs=100 + 5 * torch.randn(64, 3))
    """
    if isinstance(inputs, (tuple, list, dict)):
        raise NotApplicable(
            f"normalize_inputs: only a single input tensor can be standardised; got a {type(inputs).__name__}"
        )
    if not isinstance(inputs, Tensor):
        raise InvalidType(f"normalize_inputs: inputs must be a tensor; got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise NotApplicable(
            f"normalize_inputs: the inputs are {inputs.dtype} (indices such as token ids?); only floating-point "
            "inputs can be standardised"
        )
    if inputs.dim() < 1 or inputs.shape[0] < 2:
        raise InvalidValue(
            "normalize_inputs: inputs must be a batch (dimension 0) of at least 2 samples to estimate a std; "
            f"got shape {tuple(inputs.shape)}"
        )
    if isinstance(model, nn.Sequential) and len(model) and isinstance(model[0], Standardize):
        raise NotApplicable("normalize_inputs: the model already starts with a Standardize module")
    batch = inputs.detach().double()
    mean = batch.mean(dim=0)
    var = batch.var(dim=0, unbiased=False)
    # a feature (nearly) constant on this batch, e.g. a border pixel that is 0 in every image of it, would be divided
    # by ~sqrt(EPS) and blow up on a later batch where it is not: it is scaled by the batch's typical std instead
    typical = var.mean()
    var = torch.where(var < DEGENERATE**2 * typical, typical, var)
    std = (var + EPS).sqrt()
    standardize = Standardize(mean.to(inputs.dtype), std.to(inputs.dtype)).to(inputs.device)
    standardize = place_like(standardize, model).train(model.training)
    wrapped = nn.Sequential(standardize, model)
    wrapped.training = model.training
    return wrapped
