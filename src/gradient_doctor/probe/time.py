"""The time axis of recurrent modules (nn.RNN, nn.LSTM, nn.GRU), measured two ways: during training
(`TimeProbe`) and on checkup's one batch (`SequenceInputs` + `time_profile`).

During training:

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

On one batch (checkup):

    >>> with SequenceInputs(model) as sequences:
    ...     model(x)
    >>> [time_profile(s, seed=0) for s in sequences.captured]
    [TimeStats(name='rnn', kind='LSTM', steps=200, horizon=7, ...)]

The module is re-run alone on the input it received in the model's forward pass (its first call), detached; the
loss is a fixed random readout of the forward direction's output at the last step. ‖∂L/∂x_t‖ / ‖∂L/∂x_T‖ shows how
far back a dependency can send gradient (Hochreiter & Schmidhuber 1997; Pascanu et al. 2013).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .batch.budget import FADE
from .batch.calling import readout
from .batch.measurement import TimeStats
from .hooks import Hooks
from .indices import on_device
from .layers import Layer

RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)
_NAN = float("nan")


def sequence_input(args: tuple, kwargs: dict):
    """The input sequence a recurrent module was called with (positional or `input=`)."""
    return args[0] if args else kwargs.get("input")


def time_axis(module: nn.RNNBase, x: Tensor) -> int:
    """Which dimension of `x` is time for `module`."""
    return 1 if (x.dim() == 3 and module.batch_first) else 0


class TimeProbe(Hooks):
    """Per-step first/last time-step input-gradient ratios of the recurrent layers (on the device)."""

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self.layers = layers
        self.recurrent = [i for i, layer in enumerate(layers) if isinstance(layer.module, RECURRENT)]
        self._ratios: dict[int, Tensor] = {}

    def _register(self, handles: list) -> None:
        for i in self.recurrent:
            handles.append(self.layers[i].module.register_forward_pre_hook(self._pre_hook(i), with_kwargs=True))

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
            x = sequence_input(args, kwargs)
            if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2:
                return None
            try:
                alias = x.view_as(x) if x.requires_grad else x.detach().requires_grad_(True)
                alias.register_hook(self._grad_hook(index, time_axis(module, x)))
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


@dataclass
class Sequence:
    """A recurrent module and the input it got: x (and the initial state hx, if one was passed)."""

    name: str
    module: nn.RNNBase
    x: Tensor
    hx: Tensor | tuple[Tensor, Tensor] | None


class SequenceInputs(Hooks):
    """Forward pre-hooks that keep (detached) the first input of each recurrent module; removed on exit."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.modules = [(name or type(m).__name__, m) for name, m in model.named_modules() if isinstance(m, RECURRENT)]
        self.captured: list[Sequence] = []

    def _register(self, handles: list) -> None:
        """A forward pre-hook on every recurrent module (removed on exit by Hooks)."""
        for name, module in self.modules:
            handles.append(module.register_forward_pre_hook(self._hook(name), with_kwargs=True))

    def _hook(self, name: str):
        def hook(module, args, kwargs):
            x = sequence_input(args, kwargs)
            if any(s.module is module for s in self.captured) or not isinstance(x, Tensor):
                return  # later calls, and PackedSequence inputs, are not profiled
            hx = args[1] if len(args) > 1 else kwargs.get("hx")
            if isinstance(hx, tuple):
                hx = tuple(h.detach() for h in hx)
            elif isinstance(hx, Tensor):
                hx = hx.detach()
            self.captured.append(Sequence(name, module, x.detach(), hx))

        return hook


def time_profile(sequence: Sequence, seed: int) -> TimeStats:
    """The per-step gradient profile of one recurrent module."""
    module, x = sequence.module, sequence.x
    time_dim = time_axis(module, x)
    with torch.enable_grad():
        x = x.clone().requires_grad_(True)
        output, _ = module(x, sequence.hx)
        width = getattr(module, "proj_size", 0) or module.hidden_size
        last = output.select(time_dim, -1)[..., :width]  # forward direction at the last step
        (grad,) = torch.autograd.grad(readout(last, seed), x)
    other = [d for d in range(grad.dim()) if d != time_dim]
    norms = torch.linalg.vector_norm(grad, dim=other, dtype=torch.float64).cpu().numpy()
    relative = norms / norms[-1] if norms[-1] > 0 else np.full_like(norms, np.nan)
    eps = torch.finfo(x.dtype).eps
    kind = next(base.__name__ for base in RECURRENT if isinstance(module, base))  # subclasses too
    return TimeStats(sequence.name, kind, len(norms), relative,
                     horizon(relative, FADE), horizon(relative, eps), eps)


def horizon(relative: np.ndarray, fraction: float) -> int:
    """How many steps back from the last the relative gradient stays >= `fraction` without a break.

    >>> horizon(np.array([1e-9, 0.01, 0.2, 0.5, 1.0]), 0.05)
    2
    """
    below = np.flatnonzero(~(relative[::-1][1:] >= fraction))  # steps back 1, 2, ... (NaN counts as below)
    return int(below[0]) if below.size else len(relative) - 1
