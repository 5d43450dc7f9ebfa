"""`checkup`: a one-batch preflight that finds vanishing/exploding gradients before training.

    >>> diag = checkup(model, x)                              # fixed random readout as the loss
    >>> diag = checkup(model, x, y, nn.CrossEntropyLoss())    # or the task loss
    >>> print(diag)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ...errors import InvalidType, InvalidValue
from ...probe.batch.calling import Inputs
from ...probe.batch.measure import measure
from ...probe.batch.preserve import preserved
from ...probe.keras_layers import backend_hint
from ..causes import by_cause
from ..finding import Diagnosis
from .rules import RULES


def checkup(
    model: nn.Module,
    inputs: Inputs,
    targets: Any = None,
    loss_fn: Callable | None = None,
    *,
    trials: int = 1,
    seed: int = 0,
) -> Diagnosis:
    """Measure the model on one batch at its current weights and diagnose it; the model is left bit-identical.

    >>> diag = checkup(nn.Sequential(*[nn.Linear(32, 32), nn.Sigmoid()] * 10), torch.randn(16, 32))
    >>> diag.healthy, diag.findings[0].kind
    (False, 'vanishing_gradient')

    `inputs` is a tensor (`model(x)`), a tuple/list (`model(*x)`) or a dict (`model(**x)`). With `loss_fn`, the
    loss is `loss_fn(output, targets)` (or `loss_fn(output)` without targets); without it, an output's own `.loss`
    is used if it has one, else a fixed random linear readout of the output (see `calling`). `trials` repeats the
    pass with readout seeds `seed, seed + 1, ...` (and fresh dropout masks) and pools the squared norms.
    Parameters' `.grad`, buffers, train/eval modes and the RNG state are as before on return, also on errors.
    """
    if not isinstance(model, nn.Module):
        raise InvalidType(f"model must be a torch.nn.Module; got {type(model).__name__}{backend_hint(model)}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise InvalidValue(f"trials must be a positive int; got {trials!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidType(f"seed must be an int; got {type(seed).__name__}")
    if loss_fn is not None and not callable(loss_fn):
        raise InvalidType(f"loss_fn must be callable (output[, targets]) -> scalar tensor; got {type(loss_fn).__name__}")
    if targets is not None and loss_fn is None:
        raise InvalidValue("targets were given without a loss_fn: pass loss_fn=... (e.g. nn.CrossEntropyLoss())")
    with preserved(model):
        measurement = measure(model, inputs, targets, loss_fn, trials, seed)
    return Diagnosis(by_cause([f for rule in RULES for f in rule(measurement)]), measurement)
