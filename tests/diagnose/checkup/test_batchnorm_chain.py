"""A deep batch-normalised chain without skips: the gradient grows towards the input through the BN layers
(Yang et al. 2019); checkup calls it exploding, and a residual version of the same depth is left alone."""

from __future__ import annotations

import torch
from torch import nn

import gradient_doctor as gd


def _chain(depth: int, residual: bool = False) -> nn.Module:
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU())

        def forward(self, x):
            return x + self.body(x) if residual else self.body(x)

    return nn.Sequential(nn.Linear(64, 32), *[Block() for _ in range(depth)], nn.Linear(32, 10))


def _first_last_weight_gradient_ratio(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    nn.functional.cross_entropy(model(x), y).backward()
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    ratio = float(weights[0].grad.norm() / weights[-1].grad.norm())
    model.zero_grad()
    return ratio


def test_deep_batchnorm_chain_is_exploding_and_the_residual_one_is_not():
    torch.manual_seed(1)
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    chain = _chain(40)
    assert _first_last_weight_gradient_ratio(chain, x, y) > 100  # plain torch: the first weights get far more
    (finding,) = [f for f in gd.checkup(chain, x, y, nn.CrossEntropyLoss()).findings]
    assert (finding.kind, finding.severity) == ("exploding_gradient", "critical")
    assert finding.evidence["through_normalisation"] and finding.remedies[0] == "add_residual"
    residual = _chain(40, residual=True)
    assert "exploding_gradient" not in {f.kind for f in gd.checkup(residual, x, y, nn.CrossEntropyLoss()).findings}
    shallow = _chain(4)
    assert gd.checkup(shallow, x, y, nn.CrossEntropyLoss()).healthy


def test_frozen_layers_before_the_first_trainable_one_are_outside_the_budget():
    torch.manual_seed(0)
    layers = [nn.Linear(32, 32) for _ in range(8)] + [nn.Linear(32, 10)]
    with torch.no_grad():
        for layer in layers[:6]:
            layer.weight.mul_(0.1)  # the gradient fades ~10x per layer through these ...
            layer.requires_grad_(False)  # ... which are frozen: nothing below layer 6 trains
    model = nn.Sequential(*[m for layer in layers[:-1] for m in (layer, nn.Tanh())], layers[-1])
    x = torch.randn(64, 32)
    diagnosis = gd.checkup(model, x)
    assert diagnosis.measurement.budget.first == "12 (output)"  # the first trainable Linear
    assert "vanishing_gradient" not in {f.kind for f in diagnosis.findings}
    for layer in layers[:6]:
        layer.requires_grad_(True)
    assert "vanishing_gradient" in {f.kind for f in gd.checkup(model, x).findings}  # when they train, it matters
