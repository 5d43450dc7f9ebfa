"""Gradient through time of recurrent modules, measured on the steps that measure activations.

    >>> probe = TimeProbe(layers)      # the nn.RNN / nn.LSTM / nn.GRU layers among them
    >>> probe.arm()                    # hooks on for the coming step
    >>> loss_fn(model(x), y).backward()
    >>> probe.collect()                # float64 [n_layers]: ‖∂L/∂x_1‖ / ‖∂L/∂x_T‖ per recurrent layer, NaN elsewhere

A forward pre-hook hands each recurrent module an alias of its input sequence and hooks it: the
gradient that reaches the alias is ∂L/∂x_t for every time step t, for the training loss itself. Its
norm at the first step over its norm at the last (`time_ratio`) is how much of the gradient survives
the whole sequence back through the recurrence. An input that needs no gradient (raw data) becomes
a leaf that does, for that step only: autograd then also computes the module's input gradient (one
extra backward product per step), and the parameters' gradients are unchanged. Only the first
call of a module in a step is measured; PackedSequence inputs are skipped.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .armed import ArmedHooks
from .indices import on_device
from .layers import Layer

RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)
_NAN = float("nan")


class TimeProbe(ArmedHooks):
    """Per-step first/last time-step input-gradient ratios of the recurrent layers (on the device)."""

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self.layers = layers
        self.recurrent = [i for i, layer in enumerate(layers) if isinstance(layer.module, RECURRENT)]
        self._ratios: dict[int, Tensor] = {}

    def _register(self) -> list:
        return [
            self.layers[i].module.register_forward_pre_hook(self._pre_hook(i), with_kwargs=True)
            for i in self.recurrent
        ]

    def _forget(self) -> None:
        self._ratios = {}

    def collect(self) -> Tensor:
        """Float64 [n_layers]: the step's ratio per recurrent layer (NaN where not measured), then reset."""
        device = next(iter(self._ratios.values())).device if self._ratios else None
        out = torch.full((len(self.layers),), _NAN, dtype=torch.float64, device=device)  # a fill, no copy
        if self._ratios:
            index = on_device(tuple(self._ratios), torch.long, device)
            out[index] = torch.stack(list(self._ratios.values()))
        self._ratios = {}
        return out

    def _pre_hook(self, index: int):
        module = self.layers[index].module

        def hook(mod, args, kwargs):
            if self._failed or index in self._ratios or not torch.is_grad_enabled():
                return None
            x = args[0] if args else kwargs.get("input")
            if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2:
                return None
            try:
                alias = x.view_as(x) if x.requires_grad else x.detach().requires_grad_(True)
                time_axis = 1 if (x.dim() == 3 and module.batch_first) else 0
                alias.register_hook(self._grad_hook(index, time_axis))
                self._ratios[index] = torch.full((), _NAN, dtype=torch.float64, device=x.device)  # until backward
            except Exception as err:  # never crash the user's forward pass
                self._fail(err)
                return None
            if args:
                return (alias, *args[1:]), kwargs
            return args, {**kwargs, "input": alias}

        return hook

    def _grad_hook(self, index: int, time_axis: int):
        def hook(grad: Tensor) -> None:
            try:
                steps = grad.detach().movedim(time_axis, 0).reshape(grad.shape[time_axis], -1)
                norms = torch.linalg.vector_norm(steps, dim=1, dtype=torch.float64)
                self._ratios[index] = norms[0] / norms[-1]
            except Exception as err:
                self._fail(err)

        return hook
