"""LSUV: layer-sequential unit-variance init (Mishkin & Matas 2016, "All you need is a good init").

    >>> model = lsuv_init(model, inputs=x_batch)          # every Linear/Conv output has variance 1 +- 0.1

Algorithm 1 of the paper: pre-initialise every Linear/Conv weight with an orthonormal matrix (biases 0); then,
layer by layer in forward order, forward the batch, measure the variance of the layer's output (over all its
entries) and divide the weight by its square root, until |var - 1| < tol or `max_iter` rescalings were made
(paper: Tol_var = 0.1, T_max = 10). The paper scales only; it does not shift means. As in the authors' PyTorch
implementation (ducha-aiki/LSUV-pytorch) the model is measured in eval mode, so dropout is off and batch norm
uses its running statistics; the modes are restored afterwards, also on errors. Everything runs under
torch.no_grad(). The forward pass stops at the measured layer, so layer k costs a forward through k layers.
A layer called several times is measured at its first call; a layer the batch never reaches keeps its orthonormal
init (with a warning); so does one whose output has zero or non-finite variance. Recurrent modules are left as
they are.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ...errors import InvalidValue, NotApplicable
from ...probe.batch.calling import Inputs
from ...probe.batch.reach import first_calls, first_output
from ..surgery.blocks import weight_blocks
from ..surgery.draw import orthogonal_
from ..surgery.following import following_activations


def lsuv_init(model: nn.Module, *, inputs: Inputs, tol: float = 0.1, max_iter: int = 10) -> nn.Module:
    """Orthonormal init, then rescale each Linear/Conv/ConvTranspose weight in forward order until its output
    variance on `inputs` is within `tol` of 1 (at most `max_iter` rescalings per layer).

        >>> lsuv_init(nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 1)), inputs=torch.randn(128, 20))
    """
    if not tol > 0:
        raise InvalidValue(f"tol must be > 0; got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise InvalidValue(f"max_iter must be an int >= 0; got {max_iter!r}")
    layers = [model.get_submodule(name) for name in following_activations(model)]
    if not layers:
        raise NotApplicable("lsuv_init: the model has no nn.Linear, nn.Conv* or nn.ConvTranspose* layer")
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            for block in weight_blocks(model):
                if block.role == "layer":
                    orthogonal_(block.weight, 1.0)
                    if block.bias is not None:
                        block.bias.zero_()
            for layer in _forward_order(model, inputs, layers):
                _rescale(model, inputs, layer, tol, max_iter)
    finally:
        for module, training in modes.items():
            module.training = training
    return model


def _forward_order(model: nn.Module, inputs: Inputs, layers: list[nn.Module]) -> list[nn.Module]:
    """`layers` in the order the batch first reaches them; warns about layers it never reaches."""
    order = first_calls(model, inputs, layers)
    missed = [type(layer).__name__ for layer in layers if layer not in order]
    if missed:
        warnings.warn(f"lsuv_init: {len(missed)} layer(s) not reached by the batch keep their orthonormal init "
                      f"({', '.join(missed)})", stacklevel=3)
    return order


def _rescale(model: nn.Module, inputs: Inputs, layer: nn.Module, tol: float, max_iter: int) -> None:
    for iteration in range(max_iter + 1):
        output = first_output(model, inputs, layer)
        variance = float("nan") if output is None else float(output.double().var())
        if abs(variance - 1.0) < tol or iteration == max_iter:
            return
        if not math.isfinite(variance) or variance == 0.0:
            warnings.warn(f"lsuv_init: the output variance of a {type(layer).__name__} is {variance} (nan: not "
                          "reached); it is left as it is", stacklevel=4)
            return
        layer.weight.div_(math.sqrt(variance))
