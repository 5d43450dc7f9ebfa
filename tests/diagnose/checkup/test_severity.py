"""Vanishing through depth by how far: info within two orders of magnitude, warning below 1e-2, critical below 1e-3;
the ratio is checked against plain torch (retain_grad on the first and last Linear outputs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradient_doctor as gd


def _relu_mlp(depth: int, gain: float) -> nn.Sequential:
    torch.manual_seed(0)
    linears = [nn.Linear(64, 64) for _ in range(depth)] + [nn.Linear(64, 10)]
    with torch.no_grad():
        for linear in linears:
            linear.weight.mul_(gain)
    return nn.Sequential(*[m for linear in linears[:-1] for m in (linear, nn.ReLU())], linears[-1])


def _plain_ratio(model: nn.Sequential, x: torch.Tensor, readout: torch.Tensor) -> float:
    outputs = []

    def keep(_module, _inputs, out):
        out.retain_grad()
        outputs.append(out)

    hooks = [m.register_forward_hook(keep) for m in model if isinstance(m, nn.Linear)]
    (model(x) * readout).sum().backward()
    for hook in hooks:
        hook.remove()
    model.zero_grad()
    return float(outputs[0].grad.norm() / outputs[-1].grad.norm())


@pytest.mark.parametrize("depth, gain, severity", [(4, 1.0, "info"), (6, 0.9, "warning"), (8, 1.0, "critical")])
def test_vanishing_severity_follows_the_ratio(depth, gain, severity):
    model, x = _relu_mlp(depth, gain), torch.randn(256, 64)
    (finding,) = [f for f in gd.checkup(model, x).findings if f.kind == "vanishing_gradient"]
    ratio = finding.evidence["ratio"]
    assert finding.severity == severity
    assert {"info": 1e-2 <= ratio < 0.0498, "warning": 1e-3 <= ratio < 1e-2, "critical": ratio < 1e-3}[severity]
    # the same ratio by plain torch, with a random linear readout of the output (as checkup's default loss)
    readout = torch.randn(256, 10)
    assert _plain_ratio(model, x, readout) == pytest.approx(ratio, rel=0.2)  # another readout draw, same ratio
