"""Synthetic long-memory sequence tasks, seeded: the adding problem (two versions) and the copy task.

    >>> x, y = adding(64, steps=100, seed=0)                  # x: (64, 100, 2) float32, y: (64,)
    >>> x, y = adding(64, steps=100, seed=0, version="1997")  # Hochreiter & Schmidhuber's original
    >>> x, y = copy_task(64, steps=100, seed=0)               # x, y: (64, 120) int64 categories 0–9
    >>> baseline("copy", 100)                                 # 10·ln 8 / 120 ≈ 0.173 nats per step

`baseline` is the loss of the best predictor that ignores the input (it may know the time step): what a
network scores before it has learnt to remember anything.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ..errors import InvalidValue

COPY_LENGTH, COPY_SYMBOLS, BLANK, DELIMITER = 10, 8, 8, 9  # categories a_0–a_7 are data, a_8 blank, a_9 delimiter
FIRST_MARK_WINDOW = 10  # 1997 adding problem: X1 is one of the first 10 pairs


def adding(n: int, steps: int, seed: int,
           version: Literal["two_channel", "1997"] = "two_channel") -> tuple[Tensor, Tensor]:
    """Inputs (n, steps, 2) of (value, marker) pairs; the target (n,) depends on the two values marked 1.

    >>> x, y = adding(1000, 100, seed=0)
    >>> y = (x[..., 0] * (x[..., 1] == 1)).sum(1)       # two_channel: the target is the marked values' sum

    - `"two_channel"` (the modern form, e.g. Le et al. 2015, Arjovsky et al. 2016): values U(0, 1), one marker
      in each half; target = sum of the two marked values. Best constant prediction 1, MSE 1/6.
    - `"1997"` (Hochreiter & Schmidhuber 1997, experiment 4): values U(−1, 1); one of the first 10 pairs is
      marked 1 (X1), then one of the first steps/2 − 1 still unmarked pairs (X2); the first and last pairs
      carry marker −1 unless marked; a marked first pair has its value set to 0; target 0.5 + (X1 + X2)/4.
      Unlike the paper, every sequence has length `steps` (the paper draws lengths in [T, 1.1 T]).
      Best constant prediction 0.5; see `baseline`.
    """
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(n)
    if version == "two_channel":
        values = torch.rand(n, steps, generator=g)
        marks = torch.zeros(n, steps)
        marks[rows, torch.randint(0, steps // 2, (n,), generator=g)] = 1
        marks[rows, torch.randint(steps // 2, steps, (n,), generator=g)] = 1
        return torch.stack([values, marks], -1), (values * marks).sum(1)
    if version == "1997":
        _check_1997_steps(steps)
        values = torch.rand(n, steps, generator=g) * 2 - 1
        first = torch.randint(0, FIRST_MARK_WINDOW, (n,), generator=g)
        second = torch.randint(0, steps // 2 - 1, (n,), generator=g)
        second = second + (second >= first).long()  # skip the pair already marked
        marks = torch.zeros(n, steps)
        marks[:, [0, -1]] = -1
        marks[rows, first] = 1
        marks[rows, second] = 1
        values[:, 0] = torch.where(marks[:, 0] == 1, 0.0, values[:, 0])
        return torch.stack([values, marks], -1), 0.5 + (values * (marks == 1)).sum(1) / 4
    raise InvalidValue(f"version must be 'two_channel' or '1997'; got {version!r}")


def copy_task(n: int, steps: int, seed: int) -> tuple[Tensor, Tensor]:
    """The copy task of Arjovsky et al. 2016: remember 10 symbols across `steps` blanks, then repeat them.

    >>> x, y = copy_task(64, steps=100, seed=0)        # (64, 120) each; one-hot: F.one_hot(x, 10).float()
    >>> loss = F.cross_entropy(logits.transpose(1, 2), y)   # logits (64, 120, 10); compare baseline("copy", 100)

    Input: 10 symbols drawn uniformly from a_0–a_7, `steps` − 1 blanks (a_8), the delimiter (a_9), 10 blanks.
    Target: `steps` + 10 blanks, then the 10 symbols in order. Length `steps` + 20.
    """
    if steps < 1:
        raise InvalidValue(f"copy_task needs steps >= 1 (the delay T); got {steps}")
    g = torch.Generator().manual_seed(seed)
    symbols = torch.randint(0, COPY_SYMBOLS, (n, COPY_LENGTH), generator=g)
    x = torch.full((n, steps + 2 * COPY_LENGTH), BLANK, dtype=torch.long)
    y = torch.full_like(x, BLANK)
    x[:, :COPY_LENGTH] = symbols
    x[:, COPY_LENGTH + steps - 1] = DELIMITER
    y[:, -COPY_LENGTH:] = symbols
    return x, y


def baseline(task: Literal["adding", "adding_1997", "copy"], steps: int) -> float:
    """The loss of the best input-blind predictor: MSE for the adding problems, mean cross-entropy per step
    (nats) for the copy task.

    >>> baseline("adding", 100)          # 1/6: predict 1, the variance of a sum of two U(0, 1)
    >>> baseline("copy", 100)            # 10·ln 8 / (T + 20): blanks are certain, each symbol costs ln 8

    For "adding_1997" it is (2 − p₀)/48, predicting 0.5: each nonzero marked value adds Var(U(−1, 1))/16 = 1/48,
    and p₀ = 1/10 + (9/10)/(steps/2 − 1) is the chance that the first pair is marked (its value then 0).
    """
    if task == "adding":
        return 1 / 6
    if task == "adding_1997":
        _check_1997_steps(steps)
        first_marked = 1 / FIRST_MARK_WINDOW + (1 - 1 / FIRST_MARK_WINDOW) / (steps // 2 - 1)
        return (2 - first_marked) / 48
    if task == "copy":
        return COPY_LENGTH * math.log(COPY_SYMBOLS) / (steps + 2 * COPY_LENGTH)
    raise InvalidValue(f"task must be 'adding', 'adding_1997' or 'copy'; got {task!r}")


def _check_1997_steps(steps: int) -> None:
    if steps <= FIRST_MARK_WINDOW:
        raise InvalidValue(f"the 1997 adding problem needs steps >= {FIRST_MARK_WINDOW + 1} (X1 is one of the "
                         f"first {FIRST_MARK_WINDOW} pairs, the last pair is never marked); got {steps}")
