"""Leave a model exactly as it was: buffers (BatchNorm running statistics, num_batches_tracked), train/eval
modes, a Keras model's non-trainable variables (its moving statistics and seed states), and the random number
generators, restored on exit, also after an exception.

    >>> with preserved(model):
    ...     model(x).sum()  # BatchNorm updates its running statistics here; they are put back on exit

Parameters and their `.grad` are not touched by `checkup` in the first place (gradients are taken with
`torch.autograd.grad`, which never accumulates into `.grad`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..keras_layers import keras_state


@contextmanager
def preserved(model: nn.Module) -> Iterator[None]:
    modes = [(module, module.training) for module in model.modules()]
    buffers = [
        (module, name, buffer, buffer.detach().clone())
        for module in model.modules()
        for name, buffer in module._buffers.items()
        if buffer is not None
    ]
    variables = [(tensor, tensor.detach().clone()) for tensor in keras_state(model)]
    devices = sorted({t.device.index or 0 for t in _tensors(model) if t.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            for module, name, buffer, saved in buffers:
                module._buffers[name] = buffer  # a forward may have replaced the buffer object
                buffer.copy_(saved)
            for tensor, saved in variables:
                tensor.copy_(saved)
        for module, training in modes:
            module.training = training


def _tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    yield from model.parameters()
    yield from model.buffers()
