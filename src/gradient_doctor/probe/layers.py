"""Which modules of a model are "layers", and what kind of activation each is.

    >>> layers, params = discover(model)
    >>> [layer.name for layer in layers]
    ['0', '1', '2']

A layer is a module with parameters of its own (``recurse=False``) or a known activation module.
Containers without parameters of their own (``nn.Sequential``, user blocks) are not layers: their
children are. A parameter shared by several modules (tied weights) belongs to each of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

#: Outputs within this fraction of an activation's output range from one of its bounds count as
#: saturated. For sigmoid (range 1) that is y <= 0.01 or y >= 0.99, where sigma' <= 0.0099, i.e. 4 % of
#: its peak 0.25; for tanh (range 2) |y| >= 0.98, where tanh' <= 0.04, 4 % of its peak 1.
SATURATION_EPS = 0.01


@dataclass(frozen=True)
class ActivationSpec:
    """How to read an activation's output: its bounds (if it saturates) and whether it rectifies.

    >>> activation_spec(nn.Sigmoid())
    ActivationSpec(bounds=(0.0, 1.0), rectified=False, nonnegative=True)
    """

    bounds: tuple[float, float] | None  # saturating activations: (lower, upper) output bounds
    rectified: bool  # outputs exact zeros on a half-line: zero and dead-unit fractions apply
    nonnegative: bool = False  # no output is below 0 (|y| = y: cheaper zero and dead-unit counts)


_SATURATING = {
    nn.Sigmoid: (0.0, 1.0),
    nn.Tanh: (-1.0, 1.0),
    nn.Softsign: (-1.0, 1.0),
    nn.Hardsigmoid: (0.0, 1.0),
}
_RECTIFIED = (nn.ReLU, nn.ReLU6, nn.Hardsigmoid, nn.Hardswish, nn.Threshold)
_SMOOTH_OR_LEAKY = (
    nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Softplus, nn.LogSigmoid, nn.Tanhshrink, nn.Hardshrink, nn.Softshrink,
)


def activation_spec(module: nn.Module) -> ActivationSpec | None:
    """The activation spec of `module`, or None when it is not an activation module. A vanilla `nn.RNN` outputs its
    hidden states, each the tanh (or ReLU) of its pre-activation: they are read like that activation's outputs. So
    are a GRU's and an LSTM's: h_t = (1 - z) n + z h_(t-1), a convex mix of tanh candidates from h_0 = 0, and
    h_t = o tanh(c_t) lie in (-1, 1), and sit within SATURATION_EPS of ±1 only when their tanh (and an LSTM's output
    gate) saturate, where they pass almost no gradient to the weights before them."""
    if isinstance(module, nn.RNN):
        if module.nonlinearity == "tanh":
            return ActivationSpec((-1.0, 1.0), rectified=False)
        return ActivationSpec(None, rectified=True, nonnegative=True)
    if isinstance(module, (nn.GRU, nn.LSTM)) and not getattr(module, "proj_size", 0):
        return ActivationSpec((-1.0, 1.0), rectified=False)
    if isinstance(module, nn.Hardtanh):  # ReLU6 is a Hardtanh with bounds (0, 6)
        bounds = (float(module.min_val), float(module.max_val))
        return ActivationSpec(bounds, rectified=isinstance(module, nn.ReLU6), nonnegative=bounds[0] >= 0)
    for kind, bounds in _SATURATING.items():
        if isinstance(module, kind):
            return ActivationSpec(bounds, rectified=isinstance(module, _RECTIFIED), nonnegative=bounds[0] >= 0)
    if isinstance(module, _RECTIFIED):
        return ActivationSpec(None, rectified=True, nonnegative=isinstance(module, nn.ReLU))
    if isinstance(module, _SMOOTH_OR_LEAKY):
        return ActivationSpec(None, rectified=False)
    return None


@dataclass
class Layer:
    """One layer: its qualified name, module type, parameter indices and activation spec."""

    name: str
    module: nn.Module
    params: list[int] = field(default_factory=list)  # indices into the parameter list
    activation: ActivationSpec | None = None

    @property
    def kind(self) -> str:
        return type(self.module).__name__


@dataclass
class Parameter:
    """One parameter tensor (deduplicated) and the layers that own it."""

    name: str  # qualified name of its first owner, e.g. "encoder.0.weight"
    tensor: nn.Parameter
    layers: list[int] = field(default_factory=list)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DistributedDataParallel / DataParallel (`.module`) and
    `torch.compile` (`._orig_mod`) wrappers, so that layer names are the user's ("fc1", not "module.fc1")."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch._dynamo's OptimizedModule
            model = model._orig_mod
        else:
            return model


def is_compiled(model: nn.Module) -> bool:
    """Whether `model` runs (in part) as a `torch.compile` graph: `torch.compile(model)`, or
    `module.compile()` on it or on one of its submodules. Hooks on its modules would be traced
    into the graph (and a hook that reads tensors, like the activation statistics, breaks it)."""
    if isinstance(getattr(model, "_orig_mod", None), nn.Module):
        return True
    return any(getattr(m, "_compiled_call_impl", None) is not None for m in unwrap(model).modules())


def discover(model: nn.Module) -> tuple[list[Layer], list[Parameter]]:
    """The model's layers (registration order) and its deduplicated parameters, wrappers unwrapped. A Keras model
    (torch backend) has its Keras layers, by Keras name (probe/keras_layers.py)."""
    from .keras_layers import is_keras, keras_entries

    model = unwrap(model)
    entries = keras_entries(model) if is_keras(model) else [
        (name or type(module).__name__, module,
         [(f"{name}.{pname}" if name else pname, p) for pname, p in module.named_parameters(recurse=False)
          if p is not None],
         activation_spec(module))
        for name, module in model.named_modules(remove_duplicate=True)
    ]
    layers: list[Layer] = []
    params: list[Parameter] = []
    index_of: dict[int, int] = {}
    for name, module, own, spec in entries:
        if not own and spec is None:
            continue
        layer = Layer(name, module, activation=spec)
        for pname, p in own:
            if id(p) not in index_of:
                index_of[id(p)] = len(params)
                params.append(Parameter(pname, p))
            pi = index_of[id(p)]
            if pi not in layer.params:
                layer.params.append(pi)
                params[pi].layers.append(len(layers))
        layers.append(layer)
    return layers, params


def unit_dim(output: torch.Tensor) -> int:
    """The axis that holds an activation's units: features of (N, C), channels of (N, C, ...),
    features of a sequence (N, L, C); for an unbatched vector, its only axis."""
    if output.dim() == 1:
        return 0
    return output.dim() - 1 if output.dim() == 3 else 1


def saturated_count(values: torch.Tensor, bounds: tuple[float, float], eps: float = SATURATION_EPS) -> torch.Tensor:
    """How many entries of `values` lie within `eps` of the output range from one of `bounds` (a 0-d tensor)."""
    low, high = bounds
    half = (high - low) / 2
    return ((values - (low + half)).abs_() >= half - eps * (high - low)).sum()


def unit_maxima(values: torch.Tensor, *, nonnegative: bool = False) -> torch.Tensor:
    """Per unit (the `unit_dim` axis), the max |y| over every other axis; a unit is dead where it is 0."""
    magnitudes = values if nonnegative else values.abs()
    if values.dim() > 1:
        axis = unit_dim(values)
        magnitudes = magnitudes.amax(dim=[d for d in range(values.dim()) if d != axis])
    return magnitudes
