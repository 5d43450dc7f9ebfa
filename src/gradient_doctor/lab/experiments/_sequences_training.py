"""Sequence tasks and models, and their held-out loss, for the `recurrent` and `exploding` experiments (which
train them with lab/train.py's `fit`).

    >>> task = SequenceTask("adding", 100)
    >>> model = sequence_model("lstm_chrono", task, hidden=16)        # LSTM with chrono forget-gate bias
    >>> x, y = task.batch(64, seed=0); loss = task.loss(model(x), y)
    >>> fitted = fit(model, torch.optim.Adam(model.parameters(), 1e-2), map(task.batches(64, seed=0), count()),
    ...              task.loss, steps=400)
    >>> evaluate(model, task.batch(512, seed=1), task.loss)

Cells (`CELLS`): "tanh" (nn.RNN, PyTorch default init), "lstm" (nn.LSTM, default init: forget bias ~ U(±1/√H),
summed over the two bias vectors), "lstm_forget" (forget-gate bias 1, Gers et al. 2000 / Jozefowicz et al. 2015),
"lstm_chrono" (chrono init with T_max = the task's T, Tallec & Ollivier 2018), "gru" (nn.GRU, default init) and
"irnn" (ReLU nn.RNN with identity recurrence, Le et al. 2015).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ...errors import InvalidValue
from ...treat import remedies
from ..datasets import adding, baseline, copy_task
from ..tasks import LastStepRegressor

CELLS = ("tanh", "lstm", "lstm_forget", "lstm_chrono", "gru", "irnn")
COPY_CLASSES = 10  # copy_task's categories: 8 symbols, blank, delimiter

Batches = Callable[[int], tuple[Tensor, Tensor]]  # step -> (inputs, targets)


@dataclass(frozen=True)
class SequenceTask:
    """The two-channel adding problem or the copy task with delay `steps`, as float inputs and a loss.

    >>> task = SequenceTask("copy", 50)
    >>> x, y = task.batch(32, seed=1)       # x one-hot (32, 70, 10) float, y (32, 70) int64
    >>> task.baseline                       # 10 ln 8 / 70: the input-blind predictor's loss
    """

    name: Literal["adding", "copy"]
    steps: int

    def __post_init__(self) -> None:
        if self.name not in ("adding", "copy"):
            raise InvalidValue(f"SequenceTask.name must be 'adding' or 'copy'; got {self.name!r}")

    @property
    def inputs(self) -> int:
        return 2 if self.name == "adding" else COPY_CLASSES

    @property
    def baseline(self) -> float:
        return baseline(self.name, self.steps)

    def batch(self, n: int, seed: int) -> tuple[Tensor, Tensor]:
        if self.name == "adding":
            return adding(n, self.steps, seed)
        x, y = copy_task(n, self.steps, seed)
        return F.one_hot(x, COPY_CLASSES).float(), y

    def batches(self, n: int, seed: int) -> Batches:
        """A fresh batch for every step: step s draws with seed `seed * 1_000_003 + s`."""
        return lambda step: self.batch(n, seed * 1_000_003 + step)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """MSE for adding; mean cross-entropy per time step (nats) for copy, as `baseline` counts it."""
        if self.name == "adding":
            return F.mse_loss(output, target)
        return F.cross_entropy(output.transpose(1, 2), target)


class PerStepClassifier(nn.Module):
    """A batch-first recurrent layer with a Linear readout at every step: logits (batch, time, classes)."""

    def __init__(self, rnn: nn.RNNBase, classes: int):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size, classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


def recurrent_layer(cell: str, inputs: int, hidden: int, t_max: int) -> nn.RNNBase:
    """One batch-first recurrent layer of kind `cell` (see the module), initialised as that kind prescribes.

    >>> recurrent_layer("irnn", 2, 16, t_max=100).weight_hh_l0      # the identity
    """
    if cell in ("tanh", "irnn"):
        rnn = nn.RNN(inputs, hidden, batch_first=True, nonlinearity="relu" if cell == "irnn" else "tanh")
        return remedies.identity_recurrent_init(rnn) if cell == "irnn" else rnn
    if cell == "gru":
        return nn.GRU(inputs, hidden, batch_first=True)
    if cell in ("lstm", "lstm_forget", "lstm_chrono"):
        lstm = nn.LSTM(inputs, hidden, batch_first=True)
        if cell == "lstm_forget":
            remedies.forget_gate_bias(lstm, value=1.0)
        elif cell == "lstm_chrono":
            remedies.forget_gate_bias(lstm, chrono_t_max=max(t_max, 3))
        return lstm
    raise InvalidValue(f"cell must be one of {CELLS}; got {cell!r}")


def sequence_model(cell: str, task: SequenceTask, hidden: int) -> nn.Module:
    """The task's model around a `cell` layer: a last-step regressor (adding) or a per-step classifier (copy)."""
    rnn = recurrent_layer(cell, task.inputs, hidden, task.steps)
    return LastStepRegressor(rnn) if task.name == "adding" else PerStepClassifier(rnn, COPY_CLASSES)


def evaluate(model: nn.Module, data: tuple[Tensor, Tensor], loss_fn: Callable[[Tensor, Tensor], Tensor]) -> float:
    """The loss on held-out `(x, y)` in eval mode, without gradients (NaN stays NaN)."""
    model.eval()
    with torch.no_grad():
        value = loss_fn(model(data[0]), data[1]).item()
    model.train()
    return value


def chunks(total: int, pieces: int) -> Iterator[int]:
    """`total` steps cut into `pieces` near-equal runs: chunks(10, 4) -> 3, 3, 2, 2."""
    for k in range(pieces):
        yield total // pieces + (k < total % pieces)
