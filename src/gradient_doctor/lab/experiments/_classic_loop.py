"""A seeded mini-batch training loop that keeps every step's loss and can measure the model while it trains,
for the glorot2010, he2015 and pretraining experiments (lab/train.py's `train_classifier` returns only the end
state; its `accuracy` and `single_thread` are used alongside this).

    >>> losses = train(model, data, steps=2000, batch=64, optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    >>> window_mean(losses, 50)[-1]

Mini-batches are drawn with replacement from the training part of a `Split` by a generator seeded with `seed`,
so two models trained with the same seed see the same batches in the same order. `every`/`monitor` call a
function on the model before step 0 and after every `every` steps (for statistics over training).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from rich.progress import Progress
from torch import Tensor, nn

from ...errors import InvalidValue
from ..datasets import Split


def train(model: nn.Module, data: Split, *, steps: int, batch: int, optimizer: torch.optim.Optimizer, seed: int = 0,
          progress: Progress | None = None, description: str = "training", every: int = 0,
          monitor: Callable[[int], None] | None = None) -> Tensor:
    """Train `model` with cross-entropy for `steps` mini-batches of `batch`; return the per-step losses (float64).

        >>> train(model, data, steps=100, batch=10, optimizer=opt, every=50, monitor=lambda step: print(step))
    """
    if steps < 1 or batch < 1:
        raise InvalidValue(f"train: steps and batch must be >= 1; got steps={steps}, batch={batch}")
    generator = torch.Generator().manual_seed(seed)
    task = progress.add_task(description, total=steps) if progress is not None else None
    losses = torch.empty(steps, dtype=torch.float64)
    model.train()
    for step in range(steps):
        if monitor is not None and every and step % every == 0:
            monitor(step)
        index = torch.randint(0, len(data.y_train), (batch,), generator=generator)
        loss = nn.functional.cross_entropy(model(data.x_train[index]), data.y_train[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[step] = loss.detach()
        if task is not None:
            progress.advance(task)
    if monitor is not None and every:
        monitor(steps)
    if task is not None:
        progress.remove_task(task)
    return losses


def window_mean(losses: Tensor, window: int) -> Tensor:
    """The running mean of `losses` over the last `window` steps (shorter at the start), same length.

        >>> window_mean(torch.tensor([4.0, 2.0, 0.0]), 2)
        tensor([4., 3., 1.], dtype=torch.float64)
    """
    sums = torch.cat([torch.zeros(1, dtype=torch.float64), losses.double().cumsum(0)])
    ends = torch.arange(1, len(losses) + 1)
    starts = (ends - window).clamp(min=0)
    return (sums[ends] - sums[starts]) / (ends - starts)

