"""The time axis: for each nn.RNN / nn.LSTM / nn.GRU, the gradient at every time step's input for a loss on the
last step, and the memory horizon.

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

from ..probe.recurrent import RECURRENT
from .budget import FADE
from .calling import readout
from .hookset import HookSet
from .stats import TimeStats



@dataclass
class Sequence:
    """A recurrent module and the input it got: x (and the initial state hx, if one was passed)."""

    name: str
    module: nn.RNNBase
    x: Tensor
    hx: Tensor | tuple[Tensor, Tensor] | None


class SequenceInputs(HookSet):
    """Forward pre-hooks that keep (detached) the first input of each recurrent module; removed on exit."""

    def __init__(self, model: nn.Module):
        self.modules = [(name or type(m).__name__, m) for name, m in model.named_modules() if isinstance(m, RECURRENT)]
        self.captured: list[Sequence] = []

    def register(self, handles: list) -> None:
        """A forward pre-hook on every recurrent module (removed on exit by HookSet)."""
        for name, module in self.modules:
            handles.append(module.register_forward_pre_hook(self._hook(name), with_kwargs=True))

    def _hook(self, name: str):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs.get("input")
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
    time_dim = 1 if module.batch_first and x.dim() == 3 else 0
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
