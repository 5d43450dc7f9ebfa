"""A small, seeded training loop for the lab's classification experiments, and the accuracy it reports.

    >>> data = datasets.mnist1d()
    >>> out = train_classifier(model, data, steps=300, lr=1e-3, batch_size=128, optimizer="adam", seed=0)
    >>> out["train_loss"], out["test_accuracy"], out["diverged"]
    (0.93, 0.71, False)
    >>> accuracy(model, data.x_test, data.y_test)
    0.71
    >>> with single_thread(): ...                        # small nets: one thread is faster

Mini-batches are drawn without replacement from a seeded permutation of the training set, reshuffled each epoch
(`batch_size=None` or >= the training set: full batch). "sgd" is SGD with momentum 0.9; "adam" is Adam with
PyTorch's defaults. Nothing else is added (no clipping, no schedule, no weight decay): the lab measures what the
model and its init do under a plain optimizer. A non-finite loss (at a step, or over the training set at the
end) marks the run as diverged; training stops at the first such step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypedDict

import torch
from rich.progress import Progress, TaskID
from torch import Tensor, nn

from ..errors import InvalidValue
from .datasets import Split

OPTIMIZERS = ("sgd", "adam")
SGD_MOMENTUM = 0.9


class Trained(TypedDict):
    train_loss: float  # cross-entropy over the whole training set after training (eval mode); NaN if diverged
    test_accuracy: float  # fraction of the test set classified correctly (non-finite logits count as wrong)
    diverged: bool  # the loss became non-finite (training stopped there)


def train_classifier(model: nn.Module, split: Split, steps: int, lr: float, batch_size: int | None = 128,
                     optimizer: str = "sgd", seed: int = 0,
                     progress_task: tuple[Progress, TaskID] | None = None) -> Trained:
    """Train `model` (logits out) with cross-entropy for `steps` steps on `split`'s training part, then measure.

    >>> train_classifier(model, data, steps=200, lr=0.05, batch_size=None, seed=0)   # full batch, SGD
    {'train_loss': 1.2, 'test_accuracy': 0.55, 'diverged': False}

    `progress_task` (a rich Progress and one of its tasks) is advanced by one per step.
    """
    if optimizer not in OPTIMIZERS:
        raise InvalidValue(f"optimizer must be one of {list(OPTIMIZERS)}; got {optimizer!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidValue(f"steps must be an int >= 0; got {steps!r}")
    if not lr > 0:
        raise InvalidValue(f"lr must be > 0; got {lr!r}")
    if batch_size is not None and batch_size < 1:
        raise InvalidValue(f"batch_size must be >= 1 or None (full batch); got {batch_size!r}")
    torch.manual_seed(seed)  # dropout masks and anything else the model draws while training
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=lr))
    diverged = False
    model.train()
    for xb, yb in _batches(split, steps, batch_size, seed):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        if not math.isfinite(loss.item()):
            diverged = True
            break
        opt.step()
        if progress_task is not None:
            progress_task[0].advance(progress_task[1])
    train_loss = math.nan if diverged else _loss(model, split.x_train, split.y_train)
    diverged = diverged or not math.isfinite(train_loss)  # the last update may have been the one that overflowed
    return Trained(train_loss=train_loss, test_accuracy=accuracy(model, split.x_test, split.y_test),
                   diverged=diverged)


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of `(x, y)` the model classifies correctly, in eval mode (the mode is restored); rows whose
    logits are not all finite count as wrong.

    >>> accuracy(model, data.x_test, data.y_test)
    0.71
    """
    logits = _eval_logits(model, x)
    correct = (logits.argmax(dim=1) == y) & torch.isfinite(logits).all(dim=1)
    return float(correct.double().mean())


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (restored after): the lab's nets are small, so extra
    threads only add synchronisation, and on a shared 2-core machine they make a step ~10x slower.

    >>> with single_thread():
    ...     train_classifier(model, data, steps=100, lr=0.05)
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _loss(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float(nn.functional.cross_entropy(_eval_logits(model, x), y))


def _eval_logits(model: nn.Module, x: Tensor) -> Tensor:
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(training)


def _batches(split: Split, steps: int, batch_size: int | None, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    """`steps` (x, y) mini-batches: consecutive slices of a seeded permutation, a new permutation each epoch."""
    n = len(split.y_train)
    if batch_size is None or batch_size >= n:
        for _ in range(steps):
            yield split.x_train, split.y_train
        return
    generator = torch.Generator().manual_seed(seed)
    order, start = torch.randperm(n, generator=generator), 0
    for _ in range(steps):
        if start + batch_size > n:
            order, start = torch.randperm(n, generator=generator), 0
        rows = order[start:start + batch_size]
        start += batch_size
        yield split.x_train[rows], split.y_train[rows]
