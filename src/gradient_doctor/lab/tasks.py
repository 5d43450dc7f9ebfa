"""Small seeded tasks and models for experiments: the adding problem, a last-step sequence regressor, plain MLPs.

    >>> x, y = adding_problem(64, steps=100, seed=0)     # x: (64, 100, 2), y: (64,)
    >>> model = LastStepRegressor(nn.RNN(2, 32, batch_first=True))
    >>> plain_mlp(20, 64, nn.Sigmoid)                    # 19 hidden Linear+Sigmoid blocks, then Linear(64, 10)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .sequences import adding as adding_problem  # the two-channel adding problem; kept under its old name

__all__ = ["adding_problem", "LastStepRegressor", "plain_mlp"]


class LastStepRegressor(nn.Module):
    """A batch-first recurrent layer read out at the last step by a Linear to one number: `out, _ = self.rnn(x)`."""

    def __init__(self, rnn: nn.Module, hidden: int | None = None):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(hidden or rnn.hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1]).squeeze(-1)


def plain_mlp(depth: int, width: int, activation: type[nn.Module], gain: float | None = None,
              out: int = 10, inputs: int | None = None) -> nn.Sequential:
    """`depth` Linear layers (the first from `inputs` features, default `width`; the last to `out`), `activation`
    between them, no skips or norms; with `gain`, weights N(0, gain²/fan_in) and zero biases instead of PyTorch's
    default init."""
    layers: list[nn.Module] = []
    fan_in = width if inputs is None else inputs
    for _ in range(depth - 1):
        layers += [nn.Linear(fan_in, width), activation()]
        fan_in = width
    model = nn.Sequential(*layers, nn.Linear(fan_in, out))
    if gain is not None:
        with torch.no_grad():
            for m in model:
                if isinstance(m, nn.Linear):
                    m.weight.normal_(0, gain / math.sqrt(m.in_features))
                    m.bias.zero_()
    return model
