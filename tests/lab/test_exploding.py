"""`gradient-doctor lab exploding --quick`: a high-gain init at a high learning rate diverges, each clipping method
keeps training finite and near the healthy reference, and the recorded gradient norm matches plain torch."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import mnist1d


@pytest.fixture(scope="module")
def result(quick_lab):
    return quick_lab("exploding")[0]


def _rows(result, case):
    return {("reference" if r["init"] == "reference" else r["method"]): r for r in result.rows if r["case"] == case}


def test_unclipped_run_diverges_and_every_clipping_method_restores_it(result):
    rows = _rows(result, "mlp")
    bare, reference = rows["none"], rows["reference"]
    assert bare["nonfinite_steps"] > 0 and math.isnan(bare["relative_loss"])
    assert "critical non_finite" in bare["findings"]
    assert reference["nonfinite_steps"] == 0
    for method in ("norm", "value", "agc"):
        assert rows[method]["nonfinite_steps"] == 0, method
        assert rows[method]["relative_loss"] <= 1.5 * reference["relative_loss"], method
    assert {c.verdict for c in result.claims} == {"holds"}


def test_recorded_initial_gradient_norm_matches_plain_torch(result):
    """The watch record's first step (root sum of per-layer squares) against torch's global norm of the same step."""
    torch.manual_seed(0)  # the MLP case: 40 -> 64 x 6 -> 10 with ReLU, weights N(0, 2^2 / fan_in), zero biases
    sizes = [40, 64, 64, 64, 64, 64, 64, 10]
    layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
    with torch.no_grad():
        for layer in layers:
            layer.weight.normal_(0, 2.0 / math.sqrt(layer.in_features))
            layer.bias.zero_()
    data = mnist1d()
    rows = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(0))[:128]
    h = data.x_train[rows]
    for layer in layers[:-1]:
        h = torch.relu(layer(h))
    nn.functional.cross_entropy(layers[-1](h), data.y_train[rows]).backward()
    norm = torch.sqrt(sum((p.grad ** 2).sum() for layer in layers for p in layer.parameters())).item()
    assert _rows(result, "mlp")["none"]["grad_norm_init"] == pytest.approx(norm, rel=1e-4)
