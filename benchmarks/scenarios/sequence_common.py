"""Shared pieces of the recurrent and transformer scenarios: data, optimizers, setups and label checks.

    >>> setup = sequence_setup(model, sum_sign_data(steps=30), "adam", 1e-2)
    >>> check = healthy_check(time_ratio); check(setup)
    'first/last time-step gradient ratio = 0.82; ...'

The checks use plain torch only (`checks.py`); they are built per scenario because some need its `steps` or
its healthy reference (a plateau is a loss that does not move while the reference's falls).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn

from gradient_doctor.lab.sequences import adding

from .base import OPTIMIZERS, Setup
from .checks import (activation_fractions, first_last_ratio, first_non_finite, gradient_norms, input_stats,
                     loss_change, require, standardised, time_gradient_norms, trace)

Data = tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]
Check = Callable[[Setup], str]
HEALTHY_STEPS = 100   # training steps a healthy check (and a reference's loss) is judged on


def sum_sign(n: int, steps: int, seed: int, features: int = 1) -> tuple[Tensor, Tensor]:
    """Inputs N(0, 1) of shape (n, steps, features); class 1 when the sum of feature 0 over all steps is > 0.

    >>> x, y = sum_sign(64, 30, seed=0)        # x (64, 30, 1), y (64,) in {0, 1}: needs memory of every step
    """
    x = torch.randn(n, steps, features, generator=torch.Generator().manual_seed(seed))
    return x, (x[..., 0].sum(1) > 0).long()


def sum_sign_data(steps: int, features: int = 1) -> Data:
    """2048 training and 512 held-out sequences of the sum-sign task (seeds 0 and 1).

    >>> (x, y), (x_test, y_test) = sum_sign_data(30)
    """
    return sum_sign(2048, steps, 0, features), sum_sign(512, steps, 1, features)


def adding_data(steps: int) -> Data:
    """1024 training and 512 held-out sequences of the two-channel adding problem (seeds 0 and 1).

    >>> (x, y), (x_test, y_test) = adding_data(100)
    """
    return adding(1024, steps, seed=0), adding(512, steps, seed=1)


def sequence_setup(model: nn.Module, data: Data, optimizer: str, lr: float,
                   autocast: torch.dtype | None = None) -> Setup:
    """A Setup on `data`: cross-entropy for integer targets (classification), else MSE (regression).

    >>> sequence_setup(model, adding_data(100), "momentum", 1e-2).task
    'regression'
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}; got {optimizer!r}")
    train, test = data
    classification = not train[1].is_floating_point()
    return Setup(model=model, optimizer=partial(OPTIMIZERS[optimizer], lr=lr),
                 loss_fn=nn.CrossEntropyLoss() if classification else nn.MSELoss(), train=train, test=test,
                 task="classification" if classification else "regression", autocast=autocast)


def time_ratio(setup: Setup) -> float:
    """‖∂L/∂s_1‖ / ‖∂L/∂s_T‖ through the model's recurrent layer at initialisation (s_t the state at step t).

    >>> time_ratio(setup)        # inf when the last step's gradient is 0
    3.2e-09
    """
    norms = time_gradient_norms(setup)
    return norms[0] / norms[-1] if norms[-1] > 0 else math.inf


def depth_ratio(setup: Setup) -> float:
    """‖∂L/∂W‖ of the first weight over the last one's, at initialisation.

    >>> depth_ratio(setup)
    0.41
    """
    return first_last_ratio(gradient_norms(setup))


RATIO_NAMES = {time_ratio: "first/last time-step gradient ratio", depth_ratio: "first/last weight gradient ratio"}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def healthy_check(ratio: Callable[[Setup], float]) -> Check:
    """Healthy: the gradient ratio within [1e-2, 1e2], every loss and gradient finite over HEALTHY_STEPS steps,
    and the mean loss of the last 10 of them below 0.7x that of the first 10.

    >>> healthy_check(depth_ratio)(setup)
    'first/last weight gradient ratio = 0.41; first non-finite step = None; loss over the last/first 10 ...'
    """
    def check(setup: Setup) -> str:
        value, steps = ratio(setup), trace(setup, HEALTHY_STEPS)
        bad = next((i for i, (loss, norm) in enumerate(steps) if not (math.isfinite(loss) and math.isfinite(norm))),
                   None)
        fall = _mean([loss for loss, _ in steps[-10:]]) / _mean([loss for loss, _ in steps[:10]])
        return "; ".join([require(1e-2 <= value <= 1e2, RATIO_NAMES[ratio], value),
                          require(bad is None, "first non-finite step", bad),
                          require(fall < 0.7, f"loss over the last/first 10 of {HEALTHY_STEPS} steps", fall)])
    return check


def vanishing_check(ratio: Callable[[Setup], float]) -> Check:
    """Vanishing: the first gradient (time step or weight) below 1e-4 of the last.

    >>> vanishing_check(time_ratio)(setup)
    'first/last time-step gradient ratio = 2.3e-09'
    """
    def check(setup: Setup) -> str:
        value = ratio(setup)
        return require(value < 1e-4, RATIO_NAMES[ratio], value)
    return check


def exploding_check(ratio: Callable[[Setup], float]) -> Check:
    """Exploding: the first gradient (time step or weight) above 1e3 times the last, or the total gradient norm
    growing >= 100x within the first 10 training steps while still finite.

    >>> exploding_check(time_ratio)(setup)
    'first/last time-step gradient ratio = 4.2e+06'
    """
    def check(setup: Setup) -> str:
        value = ratio(setup)
        if value > 1e3:
            return require(True, RATIO_NAMES[ratio], value)
        norms = [norm for _, norm in trace(setup, 10)]
        growth = max((n for n in norms if math.isfinite(n)), default=0.0) / norms[0]
        return require(growth >= 100, f"{RATIO_NAMES[ratio]} = {value:.3g}; max/first gradient norm, 10 steps",
                       growth)
    return check


def saturation_check(kind: type[nn.Module]) -> Check:
    """Saturation: more than half of the outputs of every `kind` module (tanh units) beyond |y| > 0.99.

    >>> saturation_check(nn.RNN)(setup)
    'share of RNN outputs with |y| > 0.99 = 0.97'
    """
    def check(setup: Setup) -> str:
        shares = activation_fractions(setup, kind, lambda y: y.abs() > 0.99)
        require(bool(shares), f"{kind.__name__} modules in the model", len(shares))
        return require(min(shares) > 0.5, f"share of {kind.__name__} outputs with |y| > 0.99", min(shares))
    return check


def dead_check(kind: type[nn.Module]) -> Check:
    """Dead units: more than 70 % of the ReLU units output exactly 0 on the whole batch (mean over modules).

    >>> dead_check(nn.RNN)(setup)
    'share of RNN units silent on the batch = 0.91'
    """
    def check(setup: Setup) -> str:
        shares = activation_fractions(setup, kind, lambda y: y == 0, per_unit=True)
        require(bool(shares), f"{kind.__name__} modules in the model", len(shares))
        return require(_mean(shares) > 0.7, f"share of {kind.__name__} units silent on the batch", _mean(shares))
    return check


def non_finite_check(steps: int) -> Check:
    """Non-finite: a NaN/Inf in the loss or the gradients within `steps` training steps.

    >>> non_finite_check(150)(setup)
    'first non-finite step of 150 = 12'
    """
    def check(setup: Setup) -> str:
        step = first_non_finite(setup, steps)
        return require(step is not None, f"first non-finite step of {steps}", step)
    return check


def plateau_check(steps: int, reference: Callable[[], Setup]) -> Check:
    """Plateau: the training-set loss moves < 1 % in `steps` steps while the healthy reference's falls > 10 %.

    >>> plateau_check(150, reference_make)(setup)
    "relative loss change in 150 steps = 0.0004; reference's loss after/before = 0.52"
    """
    def check(setup: Setup) -> str:
        before, after = loss_change(setup, steps)
        ref_before, ref_after = loss_change(reference(), steps)
        return "; ".join([require(abs(after - before) < 0.01 * before, f"relative loss change in {steps} steps",
                                  abs(after - before) / before),
                          require(ref_after < 0.9 * ref_before, "reference's loss after/before",
                                  ref_after / ref_before)])
    return check


def bad_scale_check(steps: int) -> Check:
    """Bad data scale: inputs with |mean| > 10 or std > 10, and the same model on standardised inputs ends
    `steps` steps with under half the training loss.

    >>> bad_scale_check(100)(setup)
    'input |mean|, std = 0.02, 250; loss standardised/raw after training = 0.21'
    """
    def check(setup: Setup) -> str:
        mean, std = input_stats(setup)
        raw, fixed = loss_change(setup, steps)[1], loss_change(standardised(setup), steps)[1]
        return "; ".join([require(abs(mean) > 10 or std > 10, "input |mean|, std", f"{abs(mean):.3g}, {std:.3g}"),
                          require(fixed < 0.5 * raw, "loss standardised/raw after training", fixed / raw)])
    return check
