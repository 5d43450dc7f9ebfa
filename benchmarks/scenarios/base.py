"""A labelled training scenario: seeded, CPU-fast, with an independent plain-torch check of its label.

    >>> from benchmarks.scenarios import SCENARIOS
    >>> scenario = SCENARIOS["mlp_sigmoid_deep_vanishing"]
    >>> setup = scenario.make()                  # model, optimizer factory, data; same seed, same setup
    >>> evidence = scenario.check(setup)         # plain torch only; raises LabelError if the label is wrong
    >>> losses = train(setup, steps=scenario.steps)

A scenario is the unit of the benchmark zoo: `detection.py` runs checkup and watch+diagnose on it and compares
the findings with `label`; `repair.py` trains it untreated and treated and compares with `reference`, the healthy
scenario on the same task and data. `check` must not import gradient_doctor: a label is worth what its
independent verification is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

LABELS = (
    "healthy",         # trains: its check shows gradients of sane size in every layer and the loss falling
    "vanishing",       # the first layers' (or first time steps') gradients are orders of magnitude below the last
    "exploding",       # gradient norms grow by orders of magnitude through depth, time or steps
    "saturation",      # most units of a bounded activation sit in its flat tails
    "dead_units",      # most ReLU units never fire: their gradients are exactly zero
    "non_finite",      # a NaN/Inf appears in the loss or the gradients
    "plateau",         # learning rate far too small: the loss does not move
    "bad_data_scale",  # inputs far off zero mean / unit variance are what breaks training
)
FAMILIES = ("mlp", "cnn", "rnn", "lstm", "gru", "transformer")
SPLITS = ("dev", "test")
TASKS = ("classification", "regression")


#: The optimizers scenarios are trained with, by name (each takes params and lr).
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "momentum": partial(torch.optim.SGD, momentum=0.9),
    "adam": torch.optim.Adam,
    "adamw": partial(torch.optim.AdamW, weight_decay=1e-2),
}


class LabelError(AssertionError):
    """A scenario's plain-torch check found that its label does not hold."""


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass
class Setup:
    """One built scenario: the model, how to optimise it, and its data (all seeded by `Scenario.make`).

    >>> setup.model(setup.batch(0)[0]).shape, setup.loss_fn
    """

    model: nn.Module
    optimizer: OptimizerFactory          # params -> optimizer (repair rebuilds it for a treated model)
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    train: tuple[Tensor, Tensor]         # all training (inputs, targets); batches are drawn from it by step
    test: tuple[Tensor, Tensor]          # held-out (inputs, targets) for accuracy / loss
    task: str                            # one of TASKS: accuracy for classification, loss for regression
    batch_size: int = 64
    autocast: torch.dtype | None = None  # e.g. torch.bfloat16: forward under CPU autocast (AMP scenarios)
    clip: float | None = None            # clip_grad_norm_ max norm applied before each step, when set
    notes: dict = field(default_factory=dict)

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """The (inputs, targets) of `step`: deterministic, consecutive slices of `train` in its stored order (the
        datasets are stored shuffled), wrapping around at the end."""
        inputs, targets = self.train
        n = inputs.shape[0]
        start = (step * self.batch_size) % n
        index = torch.arange(start, start + self.batch_size) % n
        return inputs[index], targets[index]


@dataclass(frozen=True)
class Scenario:
    """A named, labelled, seeded training setup.

    >>> Scenario("mlp_relu_healthy", "mlp", "healthy", "dev", steps=200, make=..., check=...)
    """

    name: str
    family: str                          # one of FAMILIES
    label: str                           # one of LABELS
    split: str                           # "dev" (thresholds may be tuned on it) or "test" (reported, never tuned)
    steps: int                           # training steps for detection / repair (each scenario < 20 s on CPU)
    make: Callable[[], Setup]            # builds the Setup; deterministic (seeds itself)
    check: Callable[[Setup], str]        # independent plain-torch label check: returns evidence, raises LabelError
    reference: str | None = None         # the healthy scenario on the same task and data (None for healthy ones)
    variant: str = ""                    # what differs: optimizer, lr, init, width, depth, AMP, frozen layers, ...

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.family, FAMILIES, "family"), (self.label, LABELS, "label"),
                                     (self.split, SPLITS, "split")):
            if value not in allowed:
                raise ValueError(f"scenario {self.name!r}: {what} must be one of {allowed}; got {value!r}")
        if (self.label == "healthy") != (self.reference is None):
            raise ValueError(f"scenario {self.name!r}: a healthy scenario has no reference and a broken one needs "
                             f"one; got label={self.label!r}, reference={self.reference!r}")


def train_step(setup: Setup, optimizer: torch.optim.Optimizer, inputs: Tensor, targets: Tensor) -> Tensor:
    """One plain training step (zero_grad, forward under the setup's autocast, loss, backward, clip, step).

    >>> loss = train_step(setup, optimizer, *setup.batch(0))
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=setup.autocast, enabled=setup.autocast is not None):
        output = setup.model(inputs)
    loss = setup.loss_fn(output.float(), targets)
    loss.backward()
    if setup.clip is not None:
        nn.utils.clip_grad_norm_(setup.model.parameters(), setup.clip)
    optimizer.step()
    return loss.detach()


def train(setup: Setup, steps: int, optimizer: torch.optim.Optimizer | None = None) -> Iterator[Tensor]:
    """Yield the loss of each of `steps` plain training steps (the optimizer is built from the setup if not given).

    >>> losses = [float(l) for l in train(setup, 100)]
    """
    optimizer = optimizer or setup.optimizer(setup.model.parameters())
    setup.model.train()
    for step in range(steps):
        yield train_step(setup, optimizer, *setup.batch(step))


@torch.no_grad()
def evaluate(setup: Setup) -> dict[str, float]:
    """Held-out loss (and accuracy for classification) of the setup's model.

    >>> evaluate(setup)
    {'loss': 0.41, 'accuracy': 0.87}
    """
    was_training = setup.model.training
    setup.model.eval()
    try:
        inputs, targets = setup.test
        output = setup.model(inputs).float()
        result = {"loss": float(setup.loss_fn(output, targets))}
        if setup.task == "classification":
            result["accuracy"] = float((output.argmax(-1) == targets).float().mean())
    finally:
        setup.model.train(was_training)
    return result
