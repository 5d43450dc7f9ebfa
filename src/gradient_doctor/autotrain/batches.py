"""The training data of `gd.autotrain`: any re-iterable of batches, cycled, and the loss of one batch.

    >>> data = Batches(loader, pairs=True)        # a DataLoader, a list, any re-iterable of (inputs, targets)
    >>> first = data.first                         # checked: there is one, and it is a pair
    >>> for batch in data.cycle(): ...             # epochs one after another, for ever
    >>> loss = batch_loss(model, batch, loss_fn, step_fn=None)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InvalidType, InvalidValue
from ..probe.batch.preserve import preserved

StepFn = Callable[[nn.Module, Any], Tensor]


class Batches:
    """A re-iterable of batches: its first batch checked up front, then cycled epoch after epoch."""

    def __init__(self, batches: Iterable[Any], *, pairs: bool):
        if isinstance(batches, Iterator) or not isinstance(batches, Iterable):
            raise InvalidType("gd.autotrain: batches must be re-iterable (a DataLoader, a list, a dataset of "
                              f"(inputs, targets)): it is read again at each epoch and restart; got "
                              f"{type(batches).__name__}")
        self.batches = batches
        self.first = next(iter(batches), _EMPTY)
        if self.first is _EMPTY:
            raise InvalidValue("gd.autotrain: batches yielded no batch; expected at least one (inputs, targets)")
        if pairs and not (isinstance(self.first, (tuple, list)) and len(self.first) == 2):
            raise InvalidValue("gd.autotrain: each batch must be a pair (inputs, targets) for "
                               "loss_fn(model(inputs), targets); the first batch is a "
                               f"{_describe(self.first)}. Pass step_fn=... for other batches.")

    def cycle(self) -> Iterator[Any]:
        """The batches in order, starting again at the end (an epoch that yields nothing ends the cycle)."""
        while True:
            empty = True
            for batch in self.batches:
                empty = False
                yield batch
            if empty:
                raise InvalidValue("gd.autotrain: batches yielded nothing on a later epoch; expected the same batches "
                                   "each time it is iterated")


_EMPTY = object()


def _describe(batch: Any) -> str:
    if isinstance(batch, (tuple, list)):
        return f"{type(batch).__name__} of {len(batch)}"
    if isinstance(batch, Tensor):
        return f"tensor of shape {tuple(batch.shape)}"
    return type(batch).__name__


def batch_loss(model: nn.Module, batch: Any, loss_fn: Callable | None, step_fn: StepFn | None) -> Tensor:
    """The loss of one batch: `step_fn(model, batch)`, else `loss_fn(model(inputs), targets)`.

    >>> batch_loss(model, (x, y), nn.functional.cross_entropy, None)
    """
    if step_fn is not None:
        return step_fn(model, batch)
    inputs, targets = batch
    return loss_fn(model(inputs), targets)


def check_loss(model: nn.Module, batch: Any, loss_fn: Callable | None, step_fn: StepFn | None) -> None:
    """The loss of the first batch is a scalar floating-point tensor that carries a gradient; the model is left
    exactly as it was (buffers, modes, random state), so training after it is the training without it.

    >>> check_loss(model, first_batch, None, lambda m, b: m(b).sum(-1))    # InvalidValue: a loss of shape (32,)
    """
    with preserved(model):
        loss = batch_loss(model, batch, loss_fn, step_fn)
    made = "step_fn(model, batch)" if step_fn is not None else "loss_fn(model(inputs), targets)"
    if not isinstance(loss, Tensor):
        raise InvalidType(f"gd.autotrain: {made} must return a scalar loss tensor; got {type(loss).__name__}")
    if loss.numel() != 1 or not loss.is_floating_point():
        raise InvalidValue(f"gd.autotrain: {made} must return a scalar floating-point loss; got a {loss.dtype} "
                           f"tensor of shape {tuple(loss.shape)}")
    if not loss.requires_grad:
        raise InvalidValue(f"gd.autotrain: the loss from {made} does not require grad: nothing to train "
                           "(is the forward under torch.no_grad(), or are all parameters frozen?)")


def check_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """The optimizer holds the model's parameters (some of them), and nothing that is not one.

    >>> check_optimizer(model, torch.optim.SGD(other.parameters(), lr=0.1))   # InvalidValue
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InvalidType(f"gd.autotrain: optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
    own = {id(p) for p in model.parameters()}
    held = [p for group in optimizer.param_groups for p in group["params"]]
    foreign = sum(id(p) not in own for p in held)
    if not held or foreign == len(held):
        raise InvalidValue("gd.autotrain: the optimizer holds none of the model's parameters; expected "
                           f"an optimizer built over model.parameters(); got one holding {len(held)} other tensor(s)")
    if foreign:
        raise InvalidValue(f"gd.autotrain: the optimizer holds {foreign} tensor(s) that are not parameters of the "
                           "model; autotrain rebuilds the optimizer over the (treated) model and would drop them")
