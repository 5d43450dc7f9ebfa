"""lab/train.py: the training loop against a hand-written SGD step, its batching, seeding, divergence and accuracy."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import Split
from gradient_doctor.lab.train import accuracy, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def _split(n: int = 96, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + 40, 6, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()  # 4 classes, learnable from two features
    return Split(x[:n], y[:n], x[n:], y[n:])


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))


def test_one_full_batch_sgd_step_matches_a_hand_written_one():
    data, model = _split(), _mlp()
    reference = copy.deepcopy(model)
    loss = nn.functional.cross_entropy(reference(data.x_train), data.y_train)
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    out = train_classifier(model, data, steps=1, lr=0.1, batch_size=None, optimizer="sgd", seed=0)
    for p, q, g in zip(model.parameters(), reference.parameters(), grads):
        torch.testing.assert_close(p.detach(), q.detach() - 0.1 * g)  # momentum buffer = grad on step 1
    with torch.no_grad():
        logits = model(data.x_train)
        expected = nn.functional.cross_entropy(logits, data.y_train).item()
    assert out["train_loss"] == pytest.approx(expected, rel=1e-6)
    assert out["diverged"] is False


def test_minibatches_cover_each_epoch_once_and_reshuffle():
    data = _split(n=40)
    seen: list[torch.Tensor] = []
    model = _mlp()
    model[0].register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()) if m.training else None)
    train_classifier(model, data, steps=8, lr=0.01, batch_size=10, seed=3)
    rows = [torch.cdist(batch, data.x_train).argmin(dim=1) for batch in seen]
    assert [len(r) for r in rows] == [10] * 8
    first, second = torch.cat(rows[:4]), torch.cat(rows[4:])
    assert sorted(first.tolist()) == list(range(40)) == sorted(second.tolist())
    assert not torch.equal(first, second)


def test_same_seed_same_result_and_adam_learns():
    data = _split()
    a = train_classifier(_mlp(), data, steps=60, lr=0.03, batch_size=32, optimizer="adam", seed=1)
    b = train_classifier(_mlp(), data, steps=60, lr=0.03, batch_size=32, optimizer="adam", seed=1)
    assert a == b
    untrained = nn.functional.cross_entropy(_mlp()(data.x_train), data.y_train).item()
    assert a["train_loss"] < 0.5 * untrained
    assert a["test_accuracy"] > 0.6  # chance 0.25


def test_divergence_is_flagged_and_nonfinite_logits_count_as_wrong():
    data = _split()
    torch.manual_seed(0)  # a ReLU net: its weight gradients grow with the product of the weights above
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    out = train_classifier(model, data, steps=20, lr=1e10, batch_size=None, seed=0)
    assert out["diverged"] is True and math.isnan(out["train_loss"])
    logits = model(data.x_test)
    expected = ((logits.argmax(1) == data.y_test) & torch.isfinite(logits).all(1)).double().mean().item()
    assert out["test_accuracy"] == pytest.approx(expected)


def test_accuracy_counts_correct_rows_in_eval_mode():
    model = nn.Sequential(nn.Dropout(0.99), nn.Identity())  # in train mode nearly every logit would be zeroed
    x = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [1.0, float("nan")]])
    y = torch.tensor([0, 1, 1, 0])
    model.train()
    assert accuracy(model, x, y) == pytest.approx(0.5)  # rows 0 and 1; row 3 is not finite
    assert model.training


def test_bad_arguments_are_rejected():
    data = _split()
    with pytest.raises(ValueError, match="optimizer"):
        train_classifier(_mlp(), data, steps=1, lr=0.1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps"):
        train_classifier(_mlp(), data, steps=-1, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        train_classifier(_mlp(), data, steps=1, lr=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        train_classifier(_mlp(), data, steps=1, lr=0.1, batch_size=0)
