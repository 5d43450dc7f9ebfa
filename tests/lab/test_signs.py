"""lab signs (quick): the per-layer signs of a short run against the same training written in plain torch."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import mnist1d
from gradient_doctor.lab.experiment import TOO_FEW
from gradient_doctor.lab.experiments.signs import train_and_measure


def test_healthy_sgd_signs_match_plain_torch():
    data = mnist1d()
    row = train_and_measure("healthy", "sgd", 0, data, 20)
    torch.manual_seed(0)  # the healthy net: 10 Linear layers, ReLU, N(0, 2/fan_in), zero biases
    sizes = [40] + [64] * 9 + [10]
    layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
    with torch.no_grad():
        for layer in layers:
            layer.weight.normal_(0, math.sqrt(2 / layer.in_features))
            layer.bias.zero_()
    w0 = layers[0].weight.detach().clone()
    summed = torch.zeros_like(w0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        rows = torch.randint(0, len(data.y_train), (64,), generator=generator)
        h = data.x_train[rows]
        for layer in layers[:-1]:
            h = torch.relu(layer(h))
        for layer in layers:
            layer.zero_grad()
        nn.functional.cross_entropy(layers[-1](h), data.y_train[rows]).backward()
        summed += layers[0].weight.grad
        with torch.no_grad():
            for layer in layers:
                for p in layer.parameters():
                    p -= 0.1 * p.grad
    w = layers[0].weight.detach()
    assert row["first_relative_update"] == pytest.approx(float((w - w0).norm() / w0.norm()), rel=1e-4)
    assert row["first_summed_grad"] == pytest.approx(float(summed.norm()), rel=1e-4)
    assert row["first_signal"] == pytest.approx(float(summed.norm()), rel=1e-3)  # plain SGD: (w0 - wn)/eta = sum g


def test_vanishing_net_shows_the_signs_and_the_healthy_one_does_not(quick_lab):
    result, _ = quick_lab("signs")
    rows = {(r["net"], r["recipe"]): r for r in result.rows if r["part"] == "train"}
    vanishing, healthy = rows["vanishing", "sgd"], rows["healthy", "sgd"]
    assert vanishing["top_relative_update"] / vanishing["first_relative_update"] > 1e3
    assert healthy["top_relative_update"] / healthy["first_relative_update"] < 10
    assert vanishing["first_signal"] / vanishing["top_signal"] < math.exp(-3) < healthy["first_signal"] / healthy["top_signal"]
    assert all(c.verdict == TOO_FEW for c in result.claims)


def test_large_gain_saturates(quick_lab):
    result, _ = quick_lab("signs")
    init = [r for r in result.rows if r["part"] == "init" and r["activation"] == "tanh"]
    by_gain = {r["gain"]: r for r in init}
    assert by_gain[16.0]["saturated"] > by_gain[1.0]["saturated"] + 0.5
