"""The MLPs of the depth experiments (depth-sweep, depth-limit): activation × init × {plain, batchnorm, residual}.

    >>> model = depth_mlp(20, 64, "relu", init="he", arch="residual", inputs=x_batch)
    >>> weight_gain(model)          # sigma_w of the hidden Linear(64, 64) layers: sqrt(fan_in * mean(W^2))
    1.41

A depth-`d` model has `d` Linear layers: Linear(n_in, width) and the activation, `d - 2` hidden Linear(width,
width) + activation blocks, then Linear(width, n_out). The init is applied to that plain net first (PyTorch's
default init is the net as constructed; LSUV is fitted on `inputs`), then the architecture: "batchnorm" inserts a
batch norm after every Linear but the output layer (`insert_norm`, its no-skip guard acknowledged), "residual"
wraps every hidden block as x + f(x) (`add_residual` with its branch scale fixed at 1, not learned, and no
normalisation: the unnormalised stack whose variance grows every block — not He et al. 2016's block, which has batch
norm in the branch (lab/experiments/_blocks.py builds those), nor the library's zero-initialised default).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

from torch import Tensor, nn

from ...errors import InvalidValue
from ...treat import remedies
from ...treat.surgery.inserted import Residual
from ..tasks import plain_mlp

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU,
    "selu": nn.SELU, "gelu": nn.GELU, "silu": nn.SiLU,
}
INITS: dict[str, Callable[[nn.Module, Tensor], object]] = {
    "default": lambda model, inputs: model,
    "xavier": lambda model, inputs: remedies.xavier_init(model),
    "he": lambda model, inputs: remedies.he_init(model),
    "orthogonal": lambda model, inputs: remedies.orthogonal_init(model),
    "lsuv": lambda model, inputs: remedies.lsuv_init(model, inputs=inputs),
    "critical": lambda model, inputs: remedies.critical_init(model),
}
ARCHS = ("plain", "batchnorm", "residual")


def depth_mlp(depth: int, width: int, activation: str, *, init: str = "default", arch: str = "plain",
              inputs: Tensor, n_out: int = 10) -> nn.Sequential:
    """A depth-`depth` MLP on `inputs`' features with `init` (a key of INITS) and `arch` (one of ARCHS); the
    weights come from torch's global RNG (seed it first).

    >>> torch.manual_seed(0); depth_mlp(10, 64, "sigmoid", inputs=x)    # the textbook vanishing case
    """
    if depth < 2:
        raise InvalidValue(f"depth must be >= 2 (input and output layers); got {depth}")
    for what, value, choices in (("activation", activation, ACTIVATIONS), ("init", init, INITS),
                                 ("arch", arch, ARCHS)):
        if value not in choices:
            raise InvalidValue(f"{what} must be one of {list(choices)}; got {value!r}")
    act = ACTIVATIONS[activation]
    model = plain_mlp(depth, width, act, out=n_out, inputs=inputs.shape[1])
    INITS[init](model, inputs)
    if arch == "batchnorm":
        with warnings.catch_warnings():  # the guard's warning: batch norm without skips explodes (measured here)
            warnings.simplefilter("ignore")
            remedies.insert_norm(model, "batch", allow_without_skip=True)
    elif arch == "residual":
        model = remedies.add_residual(model, branch_scale=1.0)
        for module in model.modules():
            if isinstance(module, Residual):
                module.scale.requires_grad_(False)
    return model


def weight_gain(model: nn.Module) -> float:
    """sigma_w of the hidden square Linear layers, sqrt(fan_in * mean(W^2)), pooled over them (NaN if none).

    >>> weight_gain(depth_mlp(10, 64, "relu", init="he", inputs=x))   # He: sqrt(2)
    1.41
    """
    squares = [float(m.weight.detach().double().pow(2).mean()) * m.in_features for m in model.modules()
               if isinstance(m, nn.Linear) and m.in_features == m.out_features]
    return math.sqrt(sum(squares) / len(squares)) if squares else math.nan
