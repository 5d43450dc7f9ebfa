"""Small datasets for experiments, all seeded, none downloaded: MNIST-1D, scikit-learn's digits, sequence tasks.

    >>> from gradient_doctor.lab import datasets
    >>> data = datasets.mnist1d()                        # Split: 4000 train / 1000 test, (n, 40) float32
    >>> data = datasets.digits()                         # Split: 1438 / 359, (n, 64) standardised
    >>> for xb, yb in datasets.loader(data, batch_size=128, seed=0): ...
    >>> x, y = datasets.adding(1000, steps=100, seed=0)  # or version="1997"; datasets.copy_task(...)
    >>> datasets.baseline("copy", 100)                   # loss of the best input-blind predictor

Sizes, baselines and sources: docs/lab.md.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from ..errors import InvalidValue
from .mnist1d_generator import generate
from .sequences import adding, baseline, copy_task

__all__ = ["Split", "mnist1d", "digits", "loader", "adding", "copy_task", "baseline"]


class Split(NamedTuple):
    """Features float32 (n, features), labels int64 (n,); unpacks as `x, y, x_test, y_test = split`."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def mnist1d(seed: int = 42, num_samples: int = 5000) -> Split:
    """MNIST-1D (Greydanus 2020): 10 classes of 40-point signals, generated from the reference templates.

    >>> x, y, x_test, y_test = mnist1d()     # the reference dataset: seed 42, 4000 train / 1000 test

    Same data as the reference `mnist1d.data.make_dataset` for the same seed and number of samples
    (`num_samples // 10` per class, shuffled, the first 80 % for training).
    """
    if num_samples < 10:
        raise InvalidValue(f"mnist1d needs num_samples >= 10 (one per class); got {num_samples}")
    x, y = generate(num_samples, seed)
    return _split(x, y, int(len(y) * 0.8))


def digits(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes) as 64 features, standardised with the
    training part's mean and standard deviation (pixels constant in training stay 0).

    >>> x, y, x_test, y_test = digits()      # a seeded random 80/20 split

    Needs scikit-learn: `pip install 'gradient-doctor[lab]'`.
    """
    if not 0 < test_fraction < 1:
        raise InvalidValue(f"test_fraction must be strictly between 0 and 1; got {test_fraction}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("digits() needs scikit-learn: pip install 'gradient-doctor[lab]'") from err
    raw = load_digits()
    order = torch.randperm(len(raw.target), generator=torch.Generator().manual_seed(seed)).numpy()
    x, y = raw.data[order], raw.target[order]
    n_train = len(y) - round(len(y) * test_fraction)
    mean, std = x[:n_train].mean(0), x[:n_train].std(0)
    return _split((x - mean) / np.where(std > 0, std, 1.0), y, n_train)


def loader(data: Split | tuple[Tensor, Tensor], batch_size: int = 128, seed: int = 0,
           shuffle: bool = True) -> DataLoader:
    """Mini-batches of a Split's training part, or of any `(x, y)` pair, reshuffled each epoch from `seed`.

    >>> for xb, yb in loader(mnist1d(), batch_size=100, seed=0): ...
    >>> test_batches = loader((data.x_test, data.y_test), batch_size=500, shuffle=False)
    """
    x, y = (data.x_train, data.y_train) if isinstance(data, Split) else data
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))


def _split(x: np.ndarray, y: np.ndarray, n_train: int) -> Split:
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    return Split(x[:n_train], y[:n_train], x[n_train:], y[n_train:])
