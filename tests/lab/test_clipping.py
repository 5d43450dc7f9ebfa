"""lab clipping (quick): the recorded gradient norms and the vanishing net's gradients against plain torch."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import adding, mnist1d
from gradient_doctor.lab.experiment import TOO_FEW
from gradient_doctor.lab.experiments._sequences_training import SequenceTask
from gradient_doctor.lab.tasks import LastStepRegressor
from gradient_doctor.lab.train import fit


def test_fit_records_the_global_norm_before_clipping():
    torch.manual_seed(0)
    model = LastStepRegressor(nn.RNN(2, 8, batch_first=True))
    twin = LastStepRegressor(nn.RNN(2, 8, batch_first=True))
    twin.load_state_dict(model.state_dict())
    task = SequenceTask("adding", 20)
    fitted = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), map(task.batches(16, 0), itertools.count()),
                 task.loss, 3, max_norm=1e-3)
    x, y = adding(16, 20, seed=0)  # the first batch
    ((twin(x) - y) ** 2).mean().backward()
    norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in twin.parameters()))
    assert fitted.grad_norms[0] == pytest.approx(norm, rel=1e-5)
    assert len(fitted.grad_norms) == 3


def test_clipping_never_raises_the_vanishing_first_layer_gradient(quick_lab):
    result, _ = quick_lab("clipping")
    data = mnist1d()
    torch.manual_seed(0)
    sizes = [40] + [64] * 9
    layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])] + [nn.Linear(64, 10)]
    h = data.x_train[:256]
    for layer in layers[:-1]:
        h = torch.sigmoid(layer(h))
    nn.functional.cross_entropy(layers[-1](h), data.y_train[:256]).backward()
    first = float(layers[0].weight.grad.norm())
    total = math.sqrt(sum(float(p.grad.pow(2).sum()) for layer in layers for p in layer.parameters()))
    for row in [r for r in result.rows if r["part"] == "vanishing"]:
        assert row["first_before"] == pytest.approx(first, rel=1e-4)
        if row["method"] == "norm":
            assert row["first_after"] == pytest.approx(first * min(1.0, row["threshold"] / total), rel=1e-3)
        assert row["first_after"] <= row["first_before"] * (1 + 1e-6)
    assert first < 1e-6  # it vanished: ten sigmoid layers


def test_exploding_rows(quick_lab):
    result, _ = quick_lab("clipping")
    rnn = [r for r in result.rows if r["part"] == "rnn"]
    reference = next(r for r in rnn if r["gain"] == 1.0)
    bare = next(r for r in rnn if r["gain"] == 1.5 and r["multiple"] == "none")
    assert bare["nonfinite_steps"] > 0 or bare["max_norm"] > 10 * reference["unit"]
    for r in rnn:
        if r["multiple"] != "none":
            assert r["threshold"] == pytest.approx(r["multiple"] * reference["unit"])
            assert r["nonfinite_steps"] == 0  # clipped updates stay finite
    assert result.claims[0].verdict == TOO_FEW
