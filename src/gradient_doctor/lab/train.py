"""The lab's one training loop, `fit`, the seeded mini-batch samplers that feed it, and the accuracy it reports.
Every experiment trains through `fit`: depth-sweep and depth-limit via `train_classifier` (the end state),
glorot2010, he2015 and pretraining via `train_curve` (every step's loss), recurrent and exploding directly.

    >>> data = datasets.mnist1d()
    >>> out = train_classifier(model, data, steps=300, lr=1e-3, batch_size=128, optimizer="adam", seed=0)
    >>> out["train_loss"], out["test_accuracy"], out["diverged"]
    (0.93, 0.71, False)
    >>> losses = train_curve(model, data, steps=2000, batch=64, optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    >>> window_mean(losses, 50)[-1]
    >>> fitted = fit(model, optimizer, random_batches(data, 64, seed=0), F.cross_entropy, steps=100, max_norm=1.0)
    >>> accuracy(model, data.x_test, data.y_test)
    0.71
    >>> with single_thread(): ...                        # small nets: one thread is faster

A step of `fit` is plain: zero the gradients, the loss of the next batch, backward, optionally clip the global
gradient norm, optimizer step. Nothing else is added (no schedule, no weight decay): the lab measures what the
model and its init do under a plain optimizer. Batches: `epoch_batches` slices a seeded permutation of the training
set, reshuffled each epoch (`batch_size=None` or >= the training set: full batch); `random_batches` draws with
replacement from a generator seeded with `seed`. Either way two models trained with the same seed see the same
batches in the same order.

`train_classifier`: "sgd" is SGD with momentum 0.9, "adam" is Adam with PyTorch's defaults, batches from
`epoch_batches`. A non-finite loss (at a step, or over the training set at the end) marks the run as diverged;
training stops at the first such step. `train_curve`: batches from `random_batches`, the optimizer passed in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple, TypedDict

import torch
from rich.progress import Progress, TaskID
from torch import Tensor, nn

from ..errors import InvalidValue
from .datasets import Split

OPTIMIZERS = ("sgd", "adam")
SGD_MOMENTUM = 0.9

Batch = tuple[Tensor, Tensor]  # (inputs, targets)
LossFn = Callable[[Tensor, Tensor], Tensor]  # (output, target) -> scalar loss


class Trained(TypedDict):
    train_loss: float  # cross-entropy over the whole training set after training (eval mode); NaN if diverged
    test_accuracy: float  # fraction of the test set classified correctly (non-finite logits count as wrong)
    diverged: bool  # the loss became non-finite (training stopped there)


class Fitted(NamedTuple):
    losses: list[float]  # the training loss of every step taken
    nonfinite: int  # steps whose loss (with check_gradients: or a gradient) was NaN/inf
    diverged: bool  # stop_on_nonfinite ended the run at a non-finite step, without its update
    grad_norms: list[float] = []  # with max_norm: each step's global gradient norm before clipping


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[Batch], loss_fn: LossFn, steps: int,
        *, max_norm: float | None = None, check_gradients: bool = False, stop_on_nonfinite: bool = False,
        every: int = 0, monitor: Callable[[int], object] | None = None,
        after_step: Callable[[int, Tensor], object] | None = None,
        progress: tuple[Progress, TaskID] | None = None) -> Fitted:
    """Train `model` (train mode) for `steps` optimizer steps on the next `steps` batches of `batches`.

    >>> fitted = fit(model, optimizer, map(task.batches(64, seed=0), itertools.count()), task.loss, steps=200)
    >>> fitted.losses[-1], fitted.nonfinite, fitted.diverged

    `max_norm` clips the global gradient norm (torch's clip_grad_norm_) before each update and records each
    step's norm before clipping in `grad_norms` (`max_norm=math.inf`: recorded, never clipped). A step is non-finite
    when its loss, or with `check_gradients` any gradient, is NaN/inf: it is counted and still taken (as a plain
    loop would, so a diverged model stays diverged), unless `stop_on_nonfinite` ends the run there. After each
    step `after_step(step, loss)` runs and `progress` (a rich Progress and one of its tasks) advances by one;
    `monitor(step)` runs before every step that is a multiple of `every`, and after the last one unless stopped.
    """
    losses, nonfinite, norms = [], 0, []
    model.train()
    for step in range(steps):
        if monitor is not None and every and step % every == 0:
            monitor(step)
        loss, finite = _backward(model, optimizer, next(batches), loss_fn, check_gradients)
        nonfinite += not finite
        if stop_on_nonfinite and not finite:
            return Fitted(losses, nonfinite, True, norms)
        if max_norm is not None:  # max_norm=math.inf records the norms without clipping
            norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), max_norm)))
        optimizer.step()
        losses.append(loss.item())
        if after_step is not None:
            after_step(step, loss)
        if progress is not None:
            progress[0].advance(progress[1])
    if monitor is not None and every:
        monitor(steps)
    return Fitted(losses, nonfinite, False, norms)


def epoch_batches(split: Split, batch_size: int | None, seed: int) -> Iterator[Batch]:
    """Endless (x, y) mini-batches of `split`'s training part: consecutive slices of a seeded permutation, a new
    permutation when the next slice would run past the end; `batch_size=None` or >= the training set: the full set.

    >>> x, y = next(epoch_batches(data, 128, seed=0))
    """
    if batch_size is None or batch_size >= len(split.y_train):
        return itertools.repeat((split.x_train, split.y_train))
    return _permuted_slices(split, batch_size, seed)


def random_batches(split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
    """Endless (x, y) mini-batches of `split`'s training part, rows drawn with replacement by a seeded generator.

    >>> x, y = next(random_batches(data, 64, seed=0))
    """
    generator = torch.Generator().manual_seed(seed)
    while True:
        rows = torch.randint(0, len(split.y_train), (batch_size,), generator=generator)
        yield split.x_train[rows], split.y_train[rows]


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
    fitted = fit(model, opt, epoch_batches(split, batch_size, seed), nn.functional.cross_entropy, steps,
                 stop_on_nonfinite=True, progress=progress_task)
    train_loss = math.nan if fitted.diverged else _loss(model, split.x_train, split.y_train)
    diverged = fitted.diverged or not math.isfinite(train_loss)  # the last update may have been the one that overflowed
    return Trained(train_loss=train_loss, test_accuracy=accuracy(model, split.x_test, split.y_test),
                   diverged=diverged)


def train_curve(model: nn.Module, data: Split, *, steps: int, batch: int, optimizer: torch.optim.Optimizer,
                seed: int = 0, progress: Progress | None = None, description: str = "training", every: int = 0,
                monitor: Callable[[int], object] | None = None) -> Tensor:
    """Train `model` with cross-entropy for `steps` `random_batches` of `batch`; return the per-step losses (float64).

    >>> train_curve(model, data, steps=100, batch=10, optimizer=opt, every=50, monitor=lambda step: print(step))

    `progress` gets a task named `description` for the run (removed at the end); `every`/`monitor` as in `fit`.
    """
    if steps < 1 or batch < 1:
        raise InvalidValue(f"train_curve: steps and batch must be >= 1; got steps={steps}, batch={batch}")
    task = progress.add_task(description, total=steps) if progress is not None else None
    fitted = fit(model, optimizer, random_batches(data, batch, seed), nn.functional.cross_entropy, steps,
                 every=every, monitor=monitor, progress=None if task is None else (progress, task))
    if task is not None:
        progress.remove_task(task)
    return torch.tensor(fitted.losses, dtype=torch.float64)


def window_mean(losses: Tensor, window: int) -> Tensor:
    """The running mean of `losses` over the last `window` steps (shorter at the start), same length.

        >>> window_mean(torch.tensor([4.0, 2.0, 0.0]), 2)
        tensor([4., 3., 1.], dtype=torch.float64)
    """
    sums = torch.cat([torch.zeros(1, dtype=torch.float64), losses.double().cumsum(0)])
    ends = torch.arange(1, len(losses) + 1)
    starts = (ends - window).clamp(min=0)
    return (sums[ends] - sums[starts]) / (ends - starts)


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


def _backward(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, loss_fn: LossFn,
              check_gradients: bool) -> tuple[Tensor, bool]:
    """Zero the gradients, back-propagate the loss on `batch`; (the loss, whether it (and the gradients) are finite)."""
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(batch[0]), batch[1])
    loss.backward()
    return loss, math.isfinite(loss.item()) and (not check_gradients or _finite_gradients(model))


def _finite_gradients(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)


def _permuted_slices(split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
    generator = torch.Generator().manual_seed(seed)
    n = len(split.y_train)
    order, start = torch.randperm(n, generator=generator), 0
    while True:
        if start + batch_size > n:
            order, start = torch.randperm(n, generator=generator), 0
        rows = order[start:start + batch_size]
        start += batch_size
        yield split.x_train[rows], split.y_train[rows]


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
