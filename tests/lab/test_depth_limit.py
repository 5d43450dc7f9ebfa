"""lab depth-limit --quick: default-init tanh nets lose the gradient with depth, critical init keeps it and trains."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import mnist1d
from gradient_doctor.lab.experiment import VERDICTS
from gradient_doctor.lab.experiments.depth_limit import deepest_trained


@pytest.fixture(scope="module")
def limit(quick_lab):
    return quick_lab("depth-limit")[0]


def _row(result, init, depth):
    (row,) = [r for r in result.rows if (r["init"], r["depth"]) == (init, depth)]
    return row


def _plain_torch_ratio(depth: int, width: int = 32, seed: int = 0) -> float:
    """‖∂L/∂(first Linear's output)‖ / ‖∂L/∂logits‖ of a default-init tanh MLP, by retain_grad alone."""
    data = mnist1d()
    torch.manual_seed(seed)
    linears = [nn.Linear(40, width)] + [nn.Linear(width, width) for _ in range(depth - 2)] + [nn.Linear(width, 10)]
    first = linears[0](data.x_train[:256])
    first.retain_grad()
    h = torch.tanh(first)
    for layer in linears[1:-1]:
        h = torch.tanh(layer(h))
    logits = linears[-1](h)
    logits.retain_grad()
    nn.functional.cross_entropy(logits, data.y_train[:256]).backward()
    return float(first.grad.norm() / logits.grad.norm())


def test_default_init_ratio_matches_plain_torch_and_vanishes(limit):
    for depth in (10, 30):
        assert _row(limit, "default", depth)["ratio"] == pytest.approx(_plain_torch_ratio(depth), rel=1e-4)
    # σ_w² = 1/3 (U(±1/√fan_in)) and tanh' <= 1: at most (1/√3)^29 ≈ 1e-7 over 29 layers, give or take finite width
    assert _row(limit, "default", 30)["ratio"] < 1e-5


def test_critical_init_keeps_the_gradient_at_depth_30(limit):
    """χ₁ = 1 and orthogonal weights: ‖δ‖ neither vanishes nor explodes (mean field, Schoenholz et al. 2017)."""
    for depth in (10, 30):
        assert math.exp(-3) <= _row(limit, "critical", depth)["ratio"] <= math.exp(3)
    assert _row(limit, "critical", 30)["xi"] > 30 / 6  # trainable by the 6ξ rule; default's ξ is below one layer
    assert _row(limit, "default", 30)["xi"] < 30 / 6


def test_critical_init_learns_where_default_does_not(limit):
    default, critical = _row(limit, "default", 30), _row(limit, "critical", 30)
    assert default["test_accuracy"] < 0.15  # chance 0.10
    assert critical["test_accuracy"] > default["test_accuracy"] + 0.1
    assert not default["diverged"] and not critical["diverged"]
    reference = _row(limit, "linear softmax", 1)
    assert 0.1 < reference["test_accuracy"] < 0.5


def test_claims_and_limits(limit):
    assert all(c.verdict in VERDICTS for c in limit.claims) and len(limit.claims) == 2
    assert deepest_trained(limit.rows, "default") < 30  # its depth-30 accuracy is below 15 % (test above)
    for row in limit.rows:
        if row["trains"]:
            assert row["test_accuracy"] >= 0.30


def test_deepest_trained_on_hand_built_rows():
    rows = [{"init": "a", "depth": 10, "trains": True}, {"init": "a", "depth": 30, "trains": False},
            {"init": "a", "depth": 100, "trains": True}, {"init": "b", "depth": 10, "trains": False}]
    assert deepest_trained(rows, "a") == 100
    assert deepest_trained(rows, "b") == 0  # none trained
    assert deepest_trained(rows, "c") == 0  # never run
