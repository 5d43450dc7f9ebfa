"""Keras 3 models on PyTorch (`KERAS_BACKEND=torch`) seen as the probe's layers: Keras layer names, own variables.

    >>> entries = keras_entries(model)       # a keras.Model built under the torch backend
    >>> [name for name, *_ in entries]
    ['dense', 'dense_1']

Under the torch backend a Keras layer is a `torch.nn.Module` called through `nn.Module.__call__` (its forward hooks
fire) and its variables are torch Parameters, but its sublayers are not registered submodules (`named_modules()`
does not list them) and the model's root ParameterDict holds every variable. So a Keras model's layers are read
from Keras itself: each layer by its name ("outer/inner" inside a nested model or a layer with sublayers), with
the trainable variables it creates itself (frozen ones included: `layer.trainable = False` keeps them there); BN's
moving statistics, like torch's buffers, are not parameters. Its activation is the one applied to its output: an
Activation/ReLU/LeakyReLU/ELU/PReLU layer, or the `activation=` of a Dense, Conv or SimpleRNN layer (LSTM and GRU
gate theirs inside the cell and have none). This module never imports keras: an object is Keras when keras is
already imported and the object is a `keras.Layer`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .layers import ActivationSpec

_SIGMOID = ActivationSpec((0.0, 1.0), rectified=False, nonnegative=True)
_TANH = ActivationSpec((-1.0, 1.0), rectified=False)
_RELU = ActivationSpec(None, rectified=True, nonnegative=True)
_SMOOTH = ActivationSpec(None, rectified=False)
#: keras.activations by function name, read as their torch modules are (probe/layers.py): hard_sigmoid like
#: nn.Hardsigmoid (bounded and rectified), relu6 like nn.ReLU6, hard_silu like nn.Hardswish. linear, softmax and
#: exponential are not activations whose saturation or dead units mean anything: None.
FUNCTION_SPECS: dict[str, ActivationSpec] = {
    "sigmoid": _SIGMOID,
    "hard_sigmoid": ActivationSpec((0.0, 1.0), rectified=True, nonnegative=True),
    "tanh": _TANH, "softsign": _TANH, "hard_tanh": _TANH,
    "relu": _RELU,
    "relu6": ActivationSpec((0.0, 6.0), rectified=True, nonnegative=True),
    "hard_silu": ActivationSpec(None, rectified=True),
    **dict.fromkeys(("leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "log_sigmoid",
                     "tanh_shrink", "soft_shrink", "hard_shrink", "squareplus", "sparse_plus"), _SMOOTH),
}
_GATED = ("LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")  # `activation` acts inside the cell
Entry = tuple[str, nn.Module, list[tuple[str, torch.Tensor]], ActivationSpec | None]


def _keras() -> Any:
    return sys.modules.get("keras")


def is_keras(obj: object) -> bool:
    """Whether `obj` is a Keras layer or model (keras is imported and `obj` is a `keras.Layer`)."""
    layer_class = getattr(getattr(_keras(), "layers", None), "Layer", None)
    return isinstance(layer_class, type) and isinstance(obj, layer_class)


def backend_hint(obj: object) -> str:
    """Why a Keras model built under another backend cannot be used (to append to a type error), else ''.

    >>> backend_hint(keras_model_under_jax)
    "; it is a Keras model of the 'jax' backend: set KERAS_BACKEND=torch before keras is imported"
    """
    if not is_keras(obj) or isinstance(obj, nn.Module):
        return ""
    return (f"; it is a Keras model of the {_keras().backend.backend()!r} backend: gradient-doctor measures Keras "
            "on PyTorch, set KERAS_BACKEND=torch before keras is imported")


def keras_entries(model: nn.Module) -> list[Entry]:
    """(name, layer, [(parameter name, tensor)], activation spec) for each Keras layer, in the order Keras tracks
    them (the order they were added); parameters are named "layer/variable" ("dense/kernel")."""
    return [(name, layer, [(f"{name}/{v.name}", v.value) for v in layer._trainable_variables], activation_spec(layer))
            for name, layer in named_layers(model)]


def named_layers(parent: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every Keras layer inside `parent` (depth first, in the order Keras tracks them) with its name: "outer/inner"
    inside a nested model or a layer with sublayers."""
    for layer in parent._flatten_layers(include_self=False, recursive=False):
        name = prefix + layer.name
        yield name, layer
        yield from named_layers(layer, name + "/")


def activation_spec(layer: Any) -> ActivationSpec | None:
    """The activation applied to `layer`'s output, read like the torch module of the same function."""
    layers = _keras().layers
    if isinstance(layer, layers.ReLU):
        if layer.negative_slope:
            return _SMOOTH
        if layer.max_value is not None:
            return ActivationSpec((0.0, float(layer.max_value)), rectified=True, nonnegative=True)
        return _RELU
    if isinstance(layer, (layers.LeakyReLU, layers.ELU, layers.PReLU)):
        return _SMOOTH
    function = getattr(layer, "activation", None)
    if not callable(function) or type(layer).__name__ in _GATED:
        return None
    return FUNCTION_SPECS.get(getattr(function, "__name__", ""))


def keras_state(model: nn.Module) -> list[torch.Tensor]:
    """The tensors a Keras forward pass in training mode writes: its non-trainable variables (BN's moving
    statistics, dropout's seed states); empty for a torch model."""
    return [v.value for v in model.non_trainable_variables] if is_keras(model) else []


class _Restore:
    """The handle of a wrapped attribute, as a hook handle: `remove()` puts the original back."""

    def __init__(self, owner: object, name: str, original: object):
        self.owner, self.name, self.original = owner, name, original

    def remove(self) -> None:
        setattr(self.owner, self.name, self.original)


def tap_activation(module: nn.Module, hook: Callable[[torch.Tensor], None]) -> _Restore | None:
    """For a Keras layer that applies its `activation=` inside `call` (Dense, Conv), wrap it so that `hook` gets
    the gradient at the activation's input (the pre-activation); None (nothing wrapped) for any other module.

    >>> handle = tap_activation(dense, lambda grad: print(grad.norm()))
    >>> handle.remove()                       # the layer's own activation again
    """
    activation = vars(module).get("activation") if is_keras(module) else None
    if not callable(activation):
        return None

    def tapped(x: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.requires_grad:
            x.register_hook(hook)
        return activation(x, *args, **kwargs)

    module.activation = tapped
    return _Restore(module, "activation", activation)
