"""Trial training: how much a copy of a model lowers its loss in a few steps on the treatment's batch.

    >>> loss_drop(model, x, y, nn.CrossEntropyLoss(), steps=50)   # (first - last) / first, on a copy
    0.41

The loss is the one checkup uses (`loss_fn(output, targets)`, an output's `.loss`, or the fixed random readout).
The default optimizer is SGD with momentum (lr 0.01, momentum 0.9): plain enough that vanishing gradients show as
slow progress, where Adam's per-parameter rescaling would hide much of it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..probe.batch.calling import Inputs, call_model, make_loss

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def default_optimizer(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD, lr 0.01, momentum 0.9: `default_optimizer(model.parameters())`."""
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


def loss_drop(model: nn.Module, inputs: Inputs, targets: Any, loss_fn: Callable | None, *, steps: int,
              optimizer: OptimizerFactory = default_optimizer, seed: int = 0) -> float:
    """(first loss - last loss) / |first loss| after `steps` steps on a copy of `model`; -inf if the loss
    became non-finite. The model itself is not touched."""
    trial = copy.deepcopy(model).train()
    opt = optimizer([p for p in trial.parameters() if p.requires_grad])
    first = last = math.nan
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for step in range(steps + 1):
            opt.zero_grad(set_to_none=True)
            loss, _ = make_loss(call_model(trial, inputs), targets, loss_fn, seed)
            value = float(loss.detach())
            if not math.isfinite(value):
                return -math.inf
            first, last = (value if step == 0 else first), value
            if step < steps:
                loss.backward()
                opt.step()
    return (first - last) / abs(first) if first != 0 else 0.0
