"""Plain-torch measurements that scenarios use to verify their labels; nothing here imports gradient_doctor.

    >>> norms = gradient_norms(setup)                     # [(module name, ‖∂L/∂W‖), ...] in registration order
    >>> require(norms[0][1] / norms[-1][1] < 1e-4, "first/last gradient ratio", norms[0][1] / norms[-1][1])
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import Tensor, nn

from .base import LabelError, Setup, train


def require(condition: bool, what: str, value: object) -> str:
    """Evidence string `what = value` when `condition` holds, else LabelError saying what was measured.

    >>> require(ratio < 1e-4, "first/last gradient ratio", ratio)
    'first/last gradient ratio = 3.1e-07'
    """
    text = f"{what} = {value:.3g}" if isinstance(value, float) else f"{what} = {value}"
    if not condition:
        raise LabelError(f"label check failed: {text}")
    return text


def gradient_norms(setup: Setup, step: int = 0) -> list[tuple[str, float]]:
    """‖∂L/∂W‖ of every weight (parameters named `weight*` or `weight_*`) on the batch of `step`, on a copy.

    >>> gradient_norms(setup)[0]
    ('0.weight', 2.3e-09)
    """
    model = copy.deepcopy(setup.model).train()
    inputs, targets = setup.batch(step)
    with torch.autocast("cpu", dtype=setup.autocast, enabled=setup.autocast is not None):
        output = model(inputs)
    setup.loss_fn(output.float(), targets).backward()
    return [(name, float(p.grad.norm())) for name, p in model.named_parameters()
            if p.grad is not None and name.rsplit(".", 1)[-1].startswith("weight")]


def first_last_ratio(norms: list[tuple[str, float]]) -> float:
    """Gradient norm of the first weight over that of the last (inf/nan propagate as in plain floats).

    >>> first_last_ratio([("0.weight", 1e-8), ("4.weight", 1e-2)])
    1e-06
    """
    first, last = norms[0][1], norms[-1][1]
    if math.isnan(first) or math.isnan(last):
        return math.nan
    return first / last if last > 0 else math.inf


def per_module(setup: Setup, kind: type[nn.Module], measure: Callable[[Tensor], float], step: int = 0) -> list[float]:
    """`measure(output)` of every module of type `kind` on the batch of `step` (the first element of a tuple output,
    as for nn.RNN; detached), on a copy of the model in eval mode under the setup's autocast.

    >>> per_module(setup, nn.ReLU, lambda out: float((out == 0).float().mean()))
    [0.49, 0.51]

    Gradients stay enabled, so modules with a no-grad fast path (nn.TransformerEncoderLayer) still call their
    submodules and hooks.
    """
    model = copy.deepcopy(setup.model).eval()
    found: list[float] = []

    def hook(_module: nn.Module, _inputs: object, out: Tensor | tuple[Tensor, ...]) -> None:
        found.append(measure((out[0] if isinstance(out, tuple) else out).detach()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kind)]
    try:
        with torch.enable_grad(), torch.autocast("cpu", dtype=setup.autocast, enabled=setup.autocast is not None):
            model(setup.batch(step)[0])
    finally:
        for handle in handles:
            handle.remove()
    return found


# --- added for the MLP/CNN scenarios (generic: any Setup) ----------------------------------------------------

def replica(setup: Setup) -> Setup:
    """A shallow copy of the setup with a deep-copied model, to train without touching the original.

    >>> trial = replica(setup); list(train(trial, 10))      # setup.model is unchanged
    """
    trial = copy.copy(setup)
    trial.model = copy.deepcopy(setup.model)
    return trial


@torch.no_grad()
def dataset_loss(setup: Setup) -> float:
    """Loss of the setup's model on all its training inputs, in train mode (batch statistics), on a copy.

    >>> dataset_loss(setup)
    2.31
    """
    model = copy.deepcopy(setup.model).train()
    inputs, targets = setup.train
    with torch.autocast("cpu", dtype=setup.autocast, enabled=setup.autocast is not None):
        output = model(inputs)
    return float(setup.loss_fn(output.float(), targets))


def loss_change(setup: Setup, steps: int, lr_scale: float = 1.0) -> tuple[float, float]:
    """Training-set loss before and after `steps` plain steps on a copy, every learning rate times `lr_scale`.

    >>> before, after = loss_change(setup, 100)                  # as configured
    >>> before, after = loss_change(setup, 100, lr_scale=1e3)    # the same model with a 1000x learning rate
    """
    trial = replica(setup)
    optimizer = setup.optimizer(trial.model.parameters())
    for group in optimizer.param_groups:
        group["lr"] *= lr_scale
    before = dataset_loss(trial)
    for _ in train(trial, steps, optimizer):
        pass
    return before, dataset_loss(trial)


def trace(setup: Setup, steps: int) -> list[tuple[float, float]]:
    """(loss, total gradient norm over all parameters) of each of `steps` plain steps on a copy; inf/nan kept.

    >>> [norm for _, norm in trace(setup, 50)]       # e.g. growing 1000x when the learning rate is too high
    """
    trial = replica(setup)
    optimizer = setup.optimizer(trial.model.parameters())
    norms: list[tuple[float, float]] = []
    for loss in train(trial, steps, optimizer):
        grads = [p.grad.detach().float().norm() for p in trial.model.parameters() if p.grad is not None]
        norms.append((float(loss), float(torch.stack(grads).norm())))
    return norms


def first_non_finite(setup: Setup, steps: int) -> int | None:
    """The first step (0-based) whose loss or gradients hold a NaN/Inf within `steps` plain steps, else None.

    >>> first_non_finite(setup, 100)
    7
    """
    return next((step for step, (loss, norm) in enumerate(trace(setup, steps))
                 if not (math.isfinite(loss) and math.isfinite(norm))), None)


def dead_unit_fractions(setup: Setup, kind: type[nn.Module] = nn.ReLU, step: int = 0) -> list[float]:
    """For every module of type `kind`, the share of its units (dim 1: features or channels) that output 0 on
    every example (and position) of the batch of `step`.

    >>> dead_unit_fractions(setup)        # one share per ReLU layer
    [0.92, 0.88]
    """
    def dead_share(out: Tensor) -> float:
        fired = (out > 0).transpose(0, 1).reshape(out.shape[1], -1).any(dim=1)
        return float((~fired).float().mean())

    return per_module(setup, kind, dead_share, step)


def input_stats(setup: Setup) -> tuple[float, float]:
    """Mean and standard deviation over all training inputs (one number each).

    >>> input_stats(setup)
    (50.0, 0.98)
    """
    inputs = setup.train[0].float()
    return float(inputs.mean()), float(inputs.std())


def standardised(setup: Setup) -> Setup:
    """A replica whose training and test inputs are standardised with the training inputs' mean and std.

    >>> fixed = standardised(setup); input_stats(fixed)
    (0.0, 1.0)
    """
    mean, std = input_stats(setup)
    trial = replica(setup)
    trial.train = ((setup.train[0] - mean) / std, setup.train[1])
    trial.test = ((setup.test[0] - mean) / std, setup.test[1])
    return trial


# --- added for the recurrent and transformer scenarios (generic: any Setup) ------------------------------

class _Unrolled(nn.Module):
    """A batch-first nn.RNN/LSTM/GRU run one time step at a time, keeping every state with retain_grad.

    >>> unrolled = _Unrolled(nn.RNN(2, 8, batch_first=True)); out, state = unrolled(x); unrolled.states[0].grad
    """

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        if not rnn.batch_first or rnn.bidirectional:
            raise ValueError(f"time_gradient_norms needs a batch-first, unidirectional recurrent layer; got "
                             f"batch_first={rnn.batch_first}, bidirectional={rnn.bidirectional}")
        self.rnn = rnn
        self.states: list[tuple[Tensor, ...]] = []

    def forward(self, x: Tensor, state: Tensor | tuple[Tensor, Tensor] | None = None):
        outputs = []
        for t in range(x.shape[1]):
            _, state = self.rnn(x[:, t:t + 1], state)
            parts = state if isinstance(state, tuple) else (state,)
            for part in parts:
                part.retain_grad()
            self.states.append(parts)
            outputs.append(parts[0][-1])            # the top layer's h_t: every path to the loss runs through it
        return torch.stack(outputs, 1), state


def time_gradient_norms(setup: Setup, step: int = 0) -> list[float]:
    """‖∂L/∂s_t‖ for every time step t of the model's first recurrent layer (s_t its whole state: h_t, and c_t
    for an LSTM, all layers), on the batch of `step`, on a copy: the total derivative through the recurrence.

    >>> norms = time_gradient_norms(setup); norms[0] / norms[-1]      # < 1e-4: gradients vanish in time
    """
    model = copy.deepcopy(setup.model).train()
    name, rnn = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.RNNBase)), (None, None))
    if rnn is None:
        raise ValueError(f"time_gradient_norms needs a model with an nn.RNN/LSTM/GRU; got {type(model).__name__}")
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    unrolled = _Unrolled(rnn)
    setattr(parent, name.rpartition(".")[2], unrolled)
    inputs, targets = setup.batch(step)
    with torch.autocast("cpu", dtype=setup.autocast, enabled=setup.autocast is not None):
        output = model(inputs)
    setup.loss_fn(output.float(), targets).backward()
    return [math.sqrt(sum(float(p.grad.float().pow(2).sum()) if p.grad is not None else 0.0 for p in parts))
            for parts in unrolled.states]


def activation_fractions(setup: Setup, kind: type[nn.Module], predicate: Callable[[Tensor], Tensor],
                         step: int = 0, per_unit: bool = False) -> list[float]:
    """For every module of type `kind`, the share of its outputs on the batch of `step` where `predicate` holds
    (the first element when the output is a tuple, as for nn.RNN); with `per_unit`, the share of its units (last
    dimension) where it holds at every sample and position.

    >>> activation_fractions(setup, nn.RNN, lambda y: y.abs() > 0.99)             # saturated share of h_t
    [0.83]
    >>> activation_fractions(setup, nn.ReLU, lambda y: y == 0, per_unit=True)      # dead share, per ReLU
    [0.94, 1.0]
    """
    def share(out: Tensor) -> float:
        holds = predicate(out)
        return float((holds.reshape(-1, out.shape[-1]).all(0) if per_unit else holds).float().mean())

    return per_module(setup, kind, share, step)
