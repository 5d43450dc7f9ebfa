"""lab batchnorm (quick): the saturation count and Yang et al.'s per-layer growth against plain torch."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import digits
from gradient_doctor.lab.experiment import TOO_FEW
from gradient_doctor.lab.experiments.batchnorm import QUICK, YANG_FACTOR, saturated_fraction, sigmoid_net


def test_saturated_fraction_counts_sigmoid_outputs_near_the_bounds():
    torch.manual_seed(0)
    model = sigmoid_net(False, QUICK, 64)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(20)  # push the pre-activations far out
    x = digits().x_test
    h, outputs = x, []
    with torch.no_grad():
        for m in model:
            h = m(h)
            if isinstance(m, nn.Sigmoid):
                outputs.append(h.flatten())
    pooled = torch.cat(outputs)
    expected = float(((pooled < 0.01) | (pooled > 0.99)).double().mean())
    assert saturated_fraction(model, x) == pytest.approx(expected)
    assert expected > 0.5


def test_bn_relu_gradient_grows_per_layer_as_yang_et_al(quick_lab):
    """Plain torch: a 30-layer Linear-BN-ReLU net (He init, width 128, batch 256), ‖δ‖ at the first layer's
    output over ‖δ‖ at the logits, per layer; and the experiment's rows agree."""
    result, _ = quick_lab("batchnorm")
    data = digits()
    x, y = data.x_train[:256], data.y_train[:256]
    torch.manual_seed(0)
    sizes = [64] + [128] * 29
    linears = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])] + [nn.Linear(128, 10)]
    for layer in linears:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    first = linears[0](x)
    first.retain_grad()
    h = torch.relu(nn.functional.batch_norm(first, None, None, training=True))
    for layer in linears[1:-1]:
        h = torch.relu(nn.functional.batch_norm(layer(h), None, None, training=True))
    logits = linears[-1](h)
    logits.retain_grad()
    nn.functional.cross_entropy(logits, y).backward()
    ratio = float(first.grad.norm() / logits.grad.norm())
    (row,) = [r for r in result.rows if r.get("part") == "init" and r["bn"] and r["depth"] == 30]
    assert row["ratio_at_init"] == pytest.approx(ratio, rel=1e-3)
    assert 1.1 < ratio ** (1 / 29) < 1.3 and YANG_FACTOR == pytest.approx(1.2112, abs=1e-4)


def test_training_rows(quick_lab):
    result, _ = quick_lab("batchnorm")
    train = [r for r in result.rows if r["part"] == "train"]
    assert len(train) == 2 * len(QUICK.lrs)
    for r in train:
        assert r["steps_to_target"] is None or r["steps_to_target"] % 50 == 0
        assert 0 <= r["saturated_init"] <= 1 and (r["diverged"] or 0 <= r["final_accuracy"] <= 1)
    assert all(c.verdict == TOO_FEW for c in result.claims)
    assert not math.isnan(train[0]["saturated_init"])
