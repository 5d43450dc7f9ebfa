"""Which activation follows each weight layer, and the init gain that activation asks for.

    >>> model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2))
    >>> following_activations(model)
    {'0': Tanh(), '3': None}
    >>> nonlinearity_gain(nn.Tanh())   # torch.nn.init.calculate_gain("tanh")
    1.6666666666666667

The order is module registration order (`named_modules`), which is the forward order for nn.Sequential and for
the usual `__init__` that declares layers as it uses them; activation *functions* called in `forward` are not
modules and are not seen (such a layer counts as followed by nothing: gain 1).
"""

from __future__ import annotations

from torch import nn

from ...probe.layers import activation_spec
from .anatomy import NORMS, WEIGHT_LAYERS

# calculate_gain's names for activation modules (ReLU6 is a Hardtanh: the rectifiers are checked first). Smooth
# rectifiers (ELU, GELU, SiLU, ...) have no entry in calculate_gain and take ReLU's. SELU takes "linear" (LeCun
# init, variance 1/fan_in), as Klambauer et al. 2017 and the torch.nn.init docs prescribe for self-normalisation.
_GAIN_NAMES: tuple[tuple[tuple[type, ...], str], ...] = (
    ((nn.ReLU, nn.ReLU6, nn.ELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus), "relu"),
    ((nn.Tanh, nn.Hardtanh, nn.Softsign), "tanh"),
    ((nn.Sigmoid, nn.Hardsigmoid, nn.LogSigmoid), "sigmoid"),
    ((nn.SELU,), "linear"),
)


def following_activations(model: nn.Module) -> dict[str, nn.Module | None]:
    """For every Linear/Conv/ConvTranspose layer of `model` (qualified name), the first activation module
    registered after it and before the next module with parameters of its own (normalisation layers excepted);
    None when there is none (an output layer, or an activation called as a function).

        >>> following_activations(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)))
        {'0': ReLU(), '3': None}
    """
    found: dict[str, nn.Module | None] = {}
    pending: str | None = None
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_LAYERS):
            found[name] = None
            pending = name
        elif activation_spec(module) is not None and not isinstance(module, nn.RNNBase):
            # a recurrent layer's outputs are read like an activation's (probe.layers), but it has weights of its
            # own and runs on sequences: it is the next layer, not the activation of the one before
            if pending is not None:
                found[pending] = module
            pending = None
        elif not isinstance(module, NORMS) and any(True for _ in module.parameters(recurse=False)):
            pending = None
    return found


def leaky_slope(activation: nn.Module | None) -> float | None:
    """The negative-side slope of a LeakyReLU, PReLU (mean of its learned slopes) or RReLU (the mean of its
    range, which it uses in eval mode); None for any other activation."""
    if isinstance(activation, nn.LeakyReLU):
        return float(activation.negative_slope)
    if isinstance(activation, nn.PReLU):
        return float(activation.weight.detach().float().mean())
    if isinstance(activation, nn.RReLU):
        return (activation.lower + activation.upper) / 2
    return None


def nonlinearity_gain(activation: nn.Module | None) -> float:
    """The init gain for units that feed `activation`, with `torch.nn.init.calculate_gain` semantics: ReLU sqrt(2),
    leaky ReLU sqrt(2 / (1 + a^2)), tanh 5/3, sigmoid 1, SELU and none (linear) 1.

        >>> nonlinearity_gain(nn.LeakyReLU(0.2)) == (2 / (1 + 0.2 ** 2)) ** 0.5
        True
    """
    slope = leaky_slope(activation)
    if slope is not None:
        return nn.init.calculate_gain("leaky_relu", slope)
    for kinds, name in _GAIN_NAMES:
        if isinstance(activation, kinds):
            return nn.init.calculate_gain(name)
    return 1.0
