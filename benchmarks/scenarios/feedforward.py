"""Building blocks shared by the MLP and CNN scenarios: cached data, initialisers, optimizers, and the label checks.

    >>> setup = classification(net, dataset("digits"), "adam", 1e-3)        # a Setup on standardised digits
    >>> init_(net, "normal", std=3.0, bias=-2.0)                            # re-initialise every Linear/Conv
    >>> evidence = check_label("vanishing")(setup)                          # plain-torch check of a label

The checks use plain torch only (benchmarks/scenarios/checks.py); gradient_doctor is imported only to load data.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import Callable

from torch import Tensor, nn

from .base import OPTIMIZERS, Scenario, Setup
from .checks import (dead_unit_fractions, first_last_ratio, first_non_finite, gradient_norms,
                     input_stats, loss_change, activation_fractions, require, standardised, trace)

DATASETS = ("digits", "mnist1d")


Data = tuple[Tensor, Tensor, Tensor, Tensor]   # x_train, y_train, x_test, y_test


@lru_cache(maxsize=None)
def _split(name: str) -> Data:
    from gradient_doctor.lab.datasets import digits, mnist1d   # data only, and only when a scenario is made

    if name == "digits":
        return tuple(digits(seed=0))
    if name == "mnist1d":
        return tuple(mnist1d(seed=42, num_samples=3000))
    raise ValueError(f"dataset must be one of {DATASETS}; got {name!r}")


def dataset(name: str, shape: tuple[int, ...] = ()) -> Data:
    """The (standardised) `digits` or `mnist1d` split, inputs reshaped to (n, *shape) when `shape` is given.

    >>> x, y, x_test, y_test = dataset("digits", (1, 8, 8))        # images for Conv2d
    """
    x, y, x_test, y_test = _split(name)
    if shape:
        x, x_test = x.reshape(-1, *shape), x_test.reshape(-1, *shape)
    return x.clone(), y, x_test.clone(), y_test


def init_(model: nn.Module, scheme: str = "default", std: float = 1.0, bias: float | None = None) -> nn.Module:
    """Re-initialise the weights of every Linear/Conv layer of `model` in place, optionally set all their biases.

    >>> init_(net, "xavier"); init_(net, "he"); init_(net, "normal", std=1e-3); init_(net, bias=-3.0)

    `scheme`: "default" (PyTorch's, untouched), "normal" (N(0, std²)), "xavier" (Glorot normal, tanh gain),
    "he" (Kaiming normal, fan_in, ReLU gain).
    """
    initialisers = {"default": None, "normal": partial(nn.init.normal_, std=std),
                    "xavier": partial(nn.init.xavier_normal_, gain=nn.init.calculate_gain("tanh")),
                    "he": partial(nn.init.kaiming_normal_, nonlinearity="relu")}
    if scheme not in initialisers:
        raise ValueError(f"init scheme must be one of {tuple(initialisers)}; got {scheme!r}")
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if initialisers[scheme] is not None:
                initialisers[scheme](module.weight)
            if bias is not None and module.bias is not None:
                nn.init.constant_(module.bias, bias)
    return model


def classification(model: nn.Module, data: Data, optimizer: str, lr: float,
                   inputs: Callable[[Tensor], Tensor] | None = None, **setup: object) -> Setup:
    """A classification Setup: cross-entropy, `optimizer` (one of OPTIMIZERS) at `lr`, inputs mapped by `inputs`.

    >>> classification(net, dataset("digits"), "momentum", 0.05, inputs=lambda x: 255 * x)   # raw pixel scale
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}; got {optimizer!r}")
    x, y, x_test, y_test = data
    if inputs is not None:
        x, x_test = inputs(x), inputs(x_test)
    return Setup(model=model, optimizer=partial(OPTIMIZERS[optimizer], lr=lr), loss_fn=nn.CrossEntropyLoss(),
                 train=(x, y), test=(x_test, y_test), task="classification", **setup)


def on(data: str, optimizer: str, lr: float, shape: tuple[int, ...] = (),
       inputs: Callable[[Tensor], Tensor] | None = None, **setup: object) -> Callable[[nn.Module], Setup]:
    """model -> classification Setup on dataset `data` (inputs reshaped to `shape`), for a scenario's `make`.

    >>> make = lambda: on("mnist1d", "adamw", 3e-3, shape=(1, 40))(conv_net())
    """
    return lambda model: classification(model, dataset(data, shape), optimizer, lr, inputs=inputs, **setup)


def freeze_(model: nn.Module, layers: int) -> nn.Module:
    """Freeze (requires_grad=False) the first `layers` Linear/Conv layers, as when fine-tuning on fixed features.

    >>> freeze_(net, 2)
    """
    weighted = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    for module in weighted[:layers]:
        module.requires_grad_(False)
    return model


def scenario(family: str, references: dict[str, str], name: str, label: str, split: str, make: Callable[[], Setup],
             variant: str, data: str = "digits", steps: int = 150, check_steps: int | None = None,
             **check: object) -> Scenario:
    """A Scenario whose check is `check_label(label, steps=check_steps, **check)` and whose reference is
    `references[data]` (None for healthy ones).

    >>> scenario("mlp", {"digits": "mlp_relu_healthy"}, "mlp_x_plateau", "plateau", "dev", make, "Adam 1e-6")
    """
    if check_steps is not None:
        check["steps"] = check_steps
    return Scenario(name, family, label, split, steps, make, check_label(label, **check),
                    reference=None if label == "healthy" else references[data], variant=variant)


# --- label checks (plain torch) --------------------------------------------------------------------------------

def healthy(setup: Setup, steps: int = 60) -> str:
    """Every weight gradient finite and non-zero, first/last ratio within 1e-3..1e3, and the training-set loss at
    most 0.7x its start after `steps` plain steps (each condition checked before the next is computed).

    >>> healthy(setup)
    'smallest weight-gradient norm = 0.0123; first/last gradient ratio = 0.84; loss after 60 steps / before = 0.31'
    """
    norms = gradient_norms(setup)
    smallest = min(norm for _, norm in norms)
    evidence = [require(all(math.isfinite(n) for _, n in norms) and smallest > 0, "smallest weight-gradient norm",
                        smallest),
                require(1e-3 < first_last_ratio(norms) < 1e3, "first/last gradient ratio", first_last_ratio(norms))]
    before, after = loss_change(setup, steps)
    return "; ".join([*evidence, require(after < 0.7 * before, f"loss after {steps} steps / before", after / before)])


def vanishing(setup: Setup) -> str:
    """First/last weight-gradient ratio below 1e-4 (trainable weights only).

    >>> vanishing(setup)
    'first/last gradient ratio = 3.1e-07'
    """
    ratio = first_last_ratio(gradient_norms(setup))
    return require(ratio < 1e-4, "first/last gradient ratio", ratio)


def exploding(setup: Setup, steps: int = 50) -> str:
    """First/last weight-gradient ratio above 1e3 at init, or else the total gradient norm growing >= 100x
    within `steps` plain steps.

    >>> exploding(setup)
    'first/last gradient ratio = 2.4e+05'
    """
    ratio = first_last_ratio(gradient_norms(setup))
    if ratio > 1e3:
        return require(True, "first/last gradient ratio", ratio)
    norms = [norm for _, norm in trace(setup, steps)]
    growth = max((n for n in norms if math.isfinite(n)), default=0.0) / norms[0]
    return require(growth >= 100, f"first/last gradient ratio = {ratio:.3g}; "
                   f"max/first finite gradient norm over {steps} steps", growth)


def saturation(setup: Setup) -> str:
    """More than half of some tanh's outputs with |y| > 0.99, or of some sigmoid's outside (0.01, 0.99).

    >>> saturation(setup)
    'largest saturated share of a bounded activation = 0.93'
    """
    shares = (activation_fractions(setup, nn.Tanh, lambda y: y.abs() > 0.99)
              + activation_fractions(setup, nn.Sigmoid, lambda y: (y < 0.01) | (y > 0.99)))
    return require(max(shares, default=0.0) > 0.5, "largest saturated share of a bounded activation",
                   max(shares, default=0.0))


def dead_units(setup: Setup) -> str:
    """More than 70 % of some ReLU layer's units output 0 on the whole first batch.

    >>> dead_units(setup)
    'largest dead-unit share of a ReLU layer = 0.88'
    """
    shares = dead_unit_fractions(setup)
    return require(max(shares, default=0.0) > 0.7, "largest dead-unit share of a ReLU layer",
                   max(shares, default=0.0))


def non_finite(setup: Setup, steps: int = 50) -> str:
    """A NaN/Inf in the loss or the gradients within `steps` plain steps.

    >>> non_finite(setup, steps=30)
    'first non-finite step (of 30) = 4'
    """
    step = first_non_finite(setup, steps)
    return require(step is not None, f"first non-finite step (of {steps})", step)


def plateau(setup: Setup, steps: int = 100, lr_scale: float = 1e3) -> str:
    """The training-set loss moves by less than 1 % in `steps` steps, while the same model with its learning
    rate times `lr_scale` brings it below 0.8x.

    >>> plateau(setup)
    'relative loss change in 100 steps = 0.00012; same with lr x1000 = 0.21'
    """
    before, after = loss_change(setup, steps)
    change = abs(after / before - 1)
    evidence = require(change < 0.01, f"relative loss change in {steps} steps", change)
    fixed_before, fixed_after = loss_change(setup, steps, lr_scale)
    return "; ".join([evidence, require(fixed_after < 0.8 * fixed_before, f"same with lr x{lr_scale:g}",
                                        fixed_after / fixed_before)])


def bad_data_scale(setup: Setup, steps: int = 100) -> str:
    """Input statistics off (|mean| > 5, std > 20 or std < 0.05), and the same model trained `steps` steps on
    standardised inputs ends at under half the loss it ends at on the raw ones.

    >>> bad_data_scale(setup)
    'input mean = 128; input std = 76.3; loss after 100 steps, standardised / raw = 0.12'
    """
    mean, std = input_stats(setup)
    evidence = require(abs(mean) > 5 or std > 20 or std < 0.05, f"input mean = {mean:.3g}; input std", std)
    _, raw = loss_change(setup, steps)
    _, fixed = loss_change(standardised(setup), steps)
    return "; ".join([evidence, require(fixed < 0.5 * raw, f"loss after {steps} steps, standardised / raw",
                                        fixed / raw)])


_CHECKS: dict[str, Callable[..., str]] = {
    "healthy": healthy, "vanishing": vanishing, "exploding": exploding, "saturation": saturation,
    "dead_units": dead_units, "non_finite": non_finite, "plateau": plateau, "bad_data_scale": bad_data_scale}


def check_label(label: str, **options: object) -> Callable[[Setup], str]:
    """The plain-torch check of `label`, with its options bound (e.g. `steps`).

    >>> check_label("non_finite", steps=30)(setup)
    'first non-finite step (of 30) = 4'
    """
    if label not in _CHECKS:
        raise ValueError(f"label must be one of {tuple(_CHECKS)}; got {label!r}")
    return partial(_CHECKS[label], **options)
