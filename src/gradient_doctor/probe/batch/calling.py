"""Calling a model on a batch in any of the usual forms, and turning its output into the loss to differentiate.

    >>> batch = detached_inputs(x)                  # a tensor, a tuple/list (model(*x)) or a dict (model(**x))
    >>> output = call_model(model, batch)
    >>> loss, source = make_loss(output, targets=None, loss_fn=None, seed=0)   # the fixed random readout

Without a loss function the loss is a fixed random linear readout, L = <R, y> / sqrt(numel(y)) with R ~ N(0, 1)
drawn from `seed`: the gradient at the output is then an isotropic random vector of norm ≈ 1 that depends on
neither the labels nor the current predictions, so the backward pass measures how the network's Jacobians
propagate a generic signal (as in mean-field analyses), not how wrong this batch happens to be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import CheckupError, InvalidType
from ..keras_layers import is_keras

Inputs = Tensor | tuple | list | dict


def detached_inputs(inputs: Inputs) -> Inputs:
    """A copy of the batch whose floating-point tensors are fresh leaves requiring grad (so the gradient reaching
    the first layer is measured); other values pass as they are. The caller's tensors are never modified."""
    if isinstance(inputs, Tensor):
        return _leaf(inputs)
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_leaf(v) if isinstance(v, Tensor) else v for v in inputs)
    if isinstance(inputs, dict):
        return {k: _leaf(v) if isinstance(v, Tensor) else v for k, v in inputs.items()}
    raise InvalidType(
        "inputs must be a tensor, a tuple/list of positional arguments or a dict of keyword arguments; "
        f"got {type(inputs).__name__}"
    )


def input_leaves(inputs: Inputs) -> list[Tensor]:
    """The tensors of a `detached_inputs` batch that require grad."""
    values = [inputs] if isinstance(inputs, Tensor) else inputs.values() if isinstance(inputs, dict) else inputs
    return [v for v in values if isinstance(v, Tensor) and v.requires_grad]


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """`model(x)`, `model(*x)` or `model(**x)`; a Keras model takes the batch as one structure (a tensor, list or
    dict), in training mode as in `fit` (batch norm on the batch's statistics, dropout on)."""
    if is_keras(model):
        return model(inputs, training=True)
    if isinstance(inputs, Tensor):
        return model(inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(*inputs)


def output_tensor(output: Any) -> Tensor:
    """The tensor to read out: the output itself, `.logits`, or the first floating-point tensor of a tuple/list."""
    if isinstance(output, Tensor):
        candidates = [output]
    elif getattr(output, "logits", None) is not None:
        candidates = [output.logits]
    elif isinstance(output, (tuple, list)):
        candidates = list(output)
    elif isinstance(output, dict):
        candidates = list(output.values())
    else:
        candidates = []
    for value in candidates:
        if isinstance(value, Tensor) and value.is_floating_point():
            return value
    raise CheckupError(
        "expected the model to return a floating-point tensor, a tuple/list/dict holding one, or an object with "
        f".logits; got {type(output).__name__}"
    )


def make_loss(
    output: Any, targets: Any, loss_fn: Callable | None, seed: int
) -> tuple[Tensor, str]:
    """The scalar loss and where it came from: "loss_fn" (`loss_fn(output, targets)`, or `loss_fn(output)` without
    targets, the output as the model returned it: a tensor, or a tuple such as (logits, hidden)), "output.loss" (an
    output carrying its own loss, such as a Hugging Face model given labels) or "readout" (the fixed random readout
    of the output's first floating-point tensor)."""
    if loss_fn is not None:
        loss = loss_fn(output, targets) if targets is not None else loss_fn(output)
        source = "loss_fn"
    elif isinstance(getattr(output, "loss", None), Tensor):
        loss, source = output.loss, "output.loss"
    else:
        loss, source = readout(output_tensor(output), seed), "readout"
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise CheckupError(f"expected the loss to be a scalar tensor; got {_describe(loss)}")
    if not loss.requires_grad:
        raise CheckupError(
            "expected a loss that depends on a parameter or a floating-point input (which requires grad); got one "
            "that does not (are all parameters frozen and the inputs integer, or does the model use torch.no_grad()?)"
        )
    return loss.reshape(()), source


def readout(y: Tensor, seed: int) -> Tensor:
    """<R, y> / sqrt(numel(y)) with R ~ N(0, 1) drawn from `seed` on y's device."""
    generator = torch.Generator(device=y.device).manual_seed(seed)
    weights = torch.randn(y.shape, generator=generator, device=y.device, dtype=torch.float32)
    return (y.float() * weights).sum() / max(y.numel(), 1) ** 0.5


def _leaf(tensor: Tensor) -> Tensor:
    if tensor.is_floating_point():
        return tensor.detach().clone().requires_grad_(True)
    return tensor


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__
