"""gd.lab.datasets: shapes, seeding, class balance, targets and trivial baselines, each checked independently."""

from __future__ import annotations

import math
import random
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from gradient_doctor.lab import datasets

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist():
    return datasets.mnist1d()


def _linear_probe_accuracy(split: datasets.Split, steps: int = 100) -> float:
    """Test accuracy of a full-batch softmax regression trained with Adam."""
    torch.manual_seed(0)
    model = torch.nn.Linear(split.x_train.shape[1], 10)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(split.x_train), split.y_train).backward()
        opt.step()
    with torch.no_grad():
        return (model(split.x_test).argmax(1) == split.y_test).float().mean().item()


# --- MNIST-1D -------------------------------------------------------------------------------------------------


def test_mnist1d_shapes_balance_and_standardisation(mnist):
    x, y, x_test, y_test = mnist
    assert x.shape == (4000, 40) and x_test.shape == (1000, 40)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and y.shape == (4000,) and y_test.shape == (1000,)
    labels = torch.cat([y, y_test])
    assert torch.bincount(labels, minlength=10).tolist() == [500] * 10
    # shuffled: the training part is not one class after another
    assert len(set(y[:50].tolist())) > 5
    whole = torch.cat([x, x_test]).double()
    assert abs(whole.mean().item()) < 1e-6 and abs(whole.std(unbiased=False).item() - 1) < 1e-6


def _reference_mnist1d(num_samples: int, seed: int) -> datasets.Split:
    """The reference package's `make_dataset` (generates locally from the templates, never downloads)."""
    reference = pytest.importorskip("mnist1d.data")
    args = reference.get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        ref = reference.make_dataset(args)  # seeds numpy's global generator
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x, y, x_test, y_test = (torch.as_tensor(ref[key]) for key in ("x", "y", "x_test", "y_test"))
    return datasets.Split(x.float(), y.long(), x_test.float(), y_test.long())


def test_mnist1d_matches_the_reference_generator(mnist):
    for ours, theirs in [(mnist, _reference_mnist1d(5000, 42)),
                         (datasets.mnist1d(seed=3, num_samples=1000), _reference_mnist1d(1000, 3))]:
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_mnist1d_seeding():
    first, again, other = (datasets.mnist1d(seed=seed, num_samples=500) for seed in (0, 0, 1))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first.x_train, other.x_train)


def test_mnist1d_is_hard_for_a_linear_classifier(mnist):
    # Greydanus 2020: logistic regression ≈ 32 % test accuracy; chance is 10 %
    assert 0.2 < _linear_probe_accuracy(mnist) < 0.45


# --- digits ---------------------------------------------------------------------------------------------------


def test_digits_split_standardisation_and_seeding():
    split = datasets.digits(seed=0)
    raw = load_digits()
    assert split.x_train.shape == (1438, 64) and split.x_test.shape == (359, 64)
    assert split.x_train.dtype == torch.float32 and split.y_train.dtype == torch.int64
    labels = torch.cat([split.y_train, split.y_test])
    assert torch.bincount(labels).tolist() == np.bincount(raw.target).tolist()
    x = split.x_train.double()
    std = x.std(0, unbiased=False)
    assert x.mean(0).abs().max() < 1e-5
    constant = std < 1e-9
    assert constant.any() and torch.allclose(std[~constant], torch.ones_like(std[~constant]), atol=1e-5)
    assert torch.all(x[:, constant] == 0)
    assert all(torch.equal(a, b) for a, b in zip(split, datasets.digits(seed=0)))
    assert not torch.equal(split.y_train, datasets.digits(seed=1).y_train)


def test_digits_is_easy_for_logistic_regression():
    assert _linear_probe_accuracy(datasets.digits(seed=0)) > 0.9


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes `from sklearn.datasets import` fail
    with pytest.raises(ImportError, match=r"gradient-doctor\[lab\]"):
        datasets.digits()


# --- adding problem -------------------------------------------------------------------------------------------


def _marked_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of the values whose marker is 1, gathered row by row."""
    rows, steps = (x[..., 1] == 1).nonzero(as_tuple=True)
    return torch.zeros(len(x), dtype=x.dtype).index_add_(0, rows, x[rows, steps, 0])


def test_adding_two_channel_layout_target_and_baseline():
    x, y = datasets.adding(50_000, steps=20, seed=0)
    assert x.shape == (50_000, 20, 2) and x.dtype == torch.float32 and y.shape == (50_000,)
    marks = x[..., 1]
    assert set(marks.unique().tolist()) == {0.0, 1.0}
    assert torch.all(marks[:, :10].sum(1) == 1) and torch.all(marks[:, 10:].sum(1) == 1)
    assert x[..., 0].min() >= 0 and x[..., 0].max() <= 1
    torch.testing.assert_close(y, _marked_sum(x))
    # predicting 1 scores Var(U1 + U2) = 1/6; standard error here ≈ 9e-4
    assert abs(((y - 1) ** 2).mean().item() - 1 / 6) < 4e-3
    assert datasets.baseline("adding", 20) == pytest.approx(1 / 6)


def test_adding_1997_layout_target_and_baseline():
    steps = 24
    x, y = datasets.adding(200_000, steps=steps, seed=0, version="1997")
    values, marks = x[..., 0], x[..., 1]
    assert values.min() >= -1 and values.max() <= 1
    marked = (marks == 1).nonzero(as_tuple=True)[1].view(-1, 2)
    assert torch.all((marks == 1).sum(1) == 2)
    assert torch.all(marked[:, 0] < 10) and torch.all(marked[:, 1] <= steps // 2 - 1)
    assert torch.all(marks[:, -1] == -1)
    assert torch.all((marks[:, 0] == -1) | (marks[:, 0] == 1))
    assert torch.all(marks[:, 1:-1] >= 0)
    assert torch.all(values[marks[:, 0] == 1, 0] == 0)  # a marked first pair counts as 0
    torch.testing.assert_close(y, 0.5 + _marked_sum(x) / 4)
    # the best constant is the mean, 0.5; its MSE is the target variance (below 1/24 because of the zeroed X1)
    assert abs(y.mean().item() - 0.5) < 2e-3
    mse = ((y - 0.5) ** 2).mean().item()
    assert abs(mse - datasets.baseline("adding_1997", steps)) < 1e-3
    assert datasets.baseline("adding_1997", steps) < 1 / 24 - 2e-3


def test_adding_seeding_and_errors():
    for version in ("two_channel", "1997"):
        a, b, c = (datasets.adding(8, 30, seed, version=version)[0] for seed in (1, 1, 2))
        assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="version"):
        datasets.adding(8, 30, 0, version="1998")
    with pytest.raises(ValueError, match="steps >= 11"):
        datasets.adding(8, 10, 0, version="1997")


# --- copy task ------------------------------------------------------------------------------------------------


def test_copy_task_layout():
    T = 30
    x, y = datasets.copy_task(4000, steps=T, seed=0)
    assert x.shape == y.shape == (4000, T + 20) and x.dtype == y.dtype == torch.int64
    symbols = x[:, :10]
    assert symbols.min() == 0 and symbols.max() == 7
    counts = torch.bincount(symbols.flatten(), minlength=8).double()
    assert torch.all((counts / counts.sum() - 1 / 8).abs() < 0.01)
    assert torch.all(x[:, 10:T + 9] == 8) and torch.all(x[:, T + 9] == 9) and torch.all(x[:, T + 10:] == 8)
    assert torch.all(y[:, :T + 10] == 8) and torch.equal(y[:, T + 10:], symbols)
    again, other = datasets.copy_task(4000, T, seed=0), datasets.copy_task(4000, T, seed=1)
    assert torch.equal(x, again[0]) and not torch.equal(x, other[0])


@pytest.mark.parametrize("T", [10, 100])
def test_copy_task_baseline_is_the_best_memoryless_cross_entropy(T):
    _, y = datasets.copy_task(20_000, steps=T, seed=1)
    frequencies = F.one_hot(y, 10).double().mean(0)  # (T + 20, 10): the best input-blind prediction per step
    log_p = frequencies.log().expand(len(y), -1, -1)
    empirical = F.nll_loss(log_p.transpose(1, 2), y).item()
    assert empirical == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-2)
    assert datasets.baseline("copy", T) == pytest.approx(empirical, rel=1e-2)


# --- loader and argument checks -------------------------------------------------------------------------------


def test_loader_covers_the_training_part_once_per_epoch_in_a_seeded_order():
    split = datasets.Split(torch.arange(10.0)[:, None], torch.arange(10), torch.zeros(2, 1), torch.zeros(2))
    order = torch.cat([yb for _, yb in datasets.loader(split, batch_size=3, seed=0)])
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    assert torch.equal(order, torch.cat([yb for _, yb in datasets.loader(split, batch_size=3, seed=0)]))
    assert not torch.equal(order, torch.cat([yb for _, yb in datasets.loader(split, batch_size=3, seed=1)]))
    plain = datasets.loader((split.x_train, split.y_train), batch_size=4, shuffle=False)
    assert [len(yb) for _, yb in plain] == [4, 4, 2]
    assert torch.cat([xb for xb, _ in plain]).flatten().tolist() == list(range(10))


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="num_samples >= 10"):
        datasets.mnist1d(num_samples=5)
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.digits(test_fraction=1.5)
    with pytest.raises(ValueError, match="task must be"):
        datasets.baseline("copying", 10)
    with pytest.raises(ValueError, match="steps >= 1"):
        datasets.copy_task(4, 0, seed=0)
