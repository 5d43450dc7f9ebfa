"""lab he2015 (quick): a 30-layer plain ReLU MLP stalls with Xavier init and converges with He init; the
forward scales behind it are checked against ReLU's positive homogeneity and a plain-torch net."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import mnist1d
from gradient_doctor.lab.experiment import TOO_FEW
from gradient_doctor.lab.experiments.he2015 import QUICK

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def result(quick_lab):
    return quick_lab("he2015")[0]


def _row(result, depth, init):
    (row,) = [r for r in result.rows if (r["depth"], r["init"]) == (depth, init)]
    return row


def test_30_layers_xavier_stalls_he_converges(result):
    xavier, he = _row(result, 30, "xavier"), _row(result, 30, "he")
    assert xavier["steps_to_converge"] == "stalled"
    assert abs(xavier["final_loss"] - math.log(10)) < 0.01  # the uniform guess over 10 classes, throughout
    assert isinstance(he["steps_to_converge"], int) and he["final_loss"] < 0.85 * math.log(10)
    assert he["test_acc"] > xavier["test_acc"] + 0.1
    assert result.claims[0].verdict == TOO_FEW  # one seed where the full run has three


def test_22_layers_he_converges_first(result):
    xavier, he = _row(result, 22, "xavier"), _row(result, 22, "he")
    assert isinstance(he["steps_to_converge"], int)
    assert xavier["steps_to_converge"] == "stalled" or xavier["steps_to_converge"] > he["steps_to_converge"]
    # the case: Xavier converged in 0/1 runs, so "converges with both inits" cannot be judged from one seed
    assert result.claims[1].verdict == TOO_FEW and "0/1 runs converged" in result.claims[1].measured


@pytest.mark.parametrize("depth", QUICK.depths)
def test_forward_scale_ratio_is_relu_homogeneity(result, depth):
    """Zero biases and ReLU(c·z) = c·ReLU(z): He and Xavier nets drawn from the same normals differ in their last
    hidden output by the product of the per-layer std ratios, sqrt((40 + w)/40) · sqrt(2)^(depth - 2)."""
    he, xavier = _row(result, depth, "he"), _row(result, depth, "xavier")
    ratio = he["top_hidden_std_at_init"] / xavier["top_hidden_std_at_init"]
    expected = math.sqrt((40 + QUICK.width) / 40) * math.sqrt(2) ** (depth - 2)
    assert ratio == pytest.approx(expected, rel=1e-3)


def test_plain_torch_xavier_30_gives_uniform_softmax_he_does_not():
    """Why Xavier stalls: torch's own xavier_normal_ shrinks the signal 2× in variance per ReLU layer, so the
    30-layer net's logits are ~constant (loss ln 10, gradients tiny); kaiming_normal_ keeps them O(1)."""
    x, y = mnist1d().x_train[:256], mnist1d().y_train[:256]
    for init, low, high in ((nn.init.xavier_normal_, 0, 1e-3), (nn.init.kaiming_normal_, 0.05, 20)):
        torch.manual_seed(0)
        layers = [nn.Linear(40, QUICK.width)] + [nn.Linear(QUICK.width, QUICK.width) for _ in range(28)]
        net = nn.Sequential(*[m for layer in layers for m in (layer, nn.ReLU())], nn.Linear(QUICK.width, 10))
        for m in net:
            if isinstance(m, nn.Linear):
                init(m.weight)
                nn.init.zeros_(m.bias)
        logits = net(x)
        assert low < logits.std().item() < high, (init.__name__, logits.std().item())
        if low == 0:
            assert nn.functional.cross_entropy(logits, y).item() == pytest.approx(math.log(10), abs=1e-3)
