"""lab chain-rule: gd.checkup's per-layer factors of a real three-layer net against the same factors computed in
plain torch (retain_grad on every layer's output), and sigmoid' <= 1/4, tanh' <= 1 on them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import mnist1d


def _plain_torch_factors(activation: type[nn.Module], seed: int) -> list[float]:
    """‖δ_in‖/‖δ_out‖ of every module above the first Linear's output, from the loss down."""
    data = mnist1d()
    x, y = data.x_train[:256], data.y_train[:256]
    torch.manual_seed(seed)
    modules = [nn.Linear(40, 32), activation(), nn.Linear(32, 32), activation(), nn.Linear(32, 32), activation(),
               nn.Linear(32, 10)]
    outputs = []
    h = x
    for module in modules:
        h = module(h)
        h.retain_grad()
        outputs.append(h)
    nn.functional.cross_entropy(h, y).backward()
    norms = [float(o.grad.norm()) for o in outputs]
    return [norms[k - 1] / norms[k] for k in range(len(norms) - 1, 0, -1)]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_factors_match_plain_torch_and_multiply_to_the_end_to_end_ratio(quick_lab, activation):
    result, _ = quick_lab("chain-rule")
    module = nn.Sigmoid if activation == "sigmoid" else nn.Tanh
    for row in [r for r in result.rows if r["activation"] == activation]:
        expected = _plain_torch_factors(module, row["seed"])
        assert row["factors"] == pytest.approx(expected, rel=1e-4)
        assert row["end_to_end"] == pytest.approx(math.prod(expected), rel=1e-4)
        assert max(expected[1::2]) <= (0.25 if activation == "sigmoid" else 1.0)  # the activations' factors
        assert row["activation_factors"] == pytest.approx(expected[1::2], rel=1e-4)


def test_sigmoid_product_is_the_order_of_the_worked_example(quick_lab):
    """0.20 x 0.5 x 0.02 = 0.002 in the seeds; three sigmoid layers at default init give a product of the same
    order: three factors near 1/4 and three weight layers near 0.6."""
    result, _ = quick_lab("chain-rule")
    products = [r["product"] for r in result.rows if r["activation"] == "sigmoid"]
    assert all(5e-4 < p < 1e-2 for p in products)
