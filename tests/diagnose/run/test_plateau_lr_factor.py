"""A learning-rate plateau says by how much to raise the learning rate, and that factor makes training work."""

from __future__ import annotations

import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.diagnose.run.plateau import TYPICAL_STEP, lr_factor


def test_lr_factor_is_the_smallest_power_of_ten_up_to_the_typical_step():
    assert lr_factor(TYPICAL_STEP / 1000) == 1000.0
    assert lr_factor(TYPICAL_STEP / 1300) == 10000.0  # 10^3.11: 10^3 falls short
    assert lr_factor(TYPICAL_STEP) == 10.0 and lr_factor(0.0) == 10.0  # never below x10: it is a plateau


def _train(lr: float, steps: int, watch: bool):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    x = torch.randn(512, 20)
    y = (x[:, :3].argmax(1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    run = gd.watch(model, opt, update_every=5, activations=False) if watch else None
    for step in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[(step * 64) % 512:][:64]), y[(step * 64) % 512:][:64])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if run is not None:
            run.step(loss=loss)
    if run is not None:
        run.close()
    return losses, run


def test_tiny_lr_plateau_suggests_a_factor_that_trains():
    losses, run = _train(1e-7, 150, watch=True)
    (plateau,) = [f for f in run.diagnose().findings if f.kind == "loss_plateau"]
    assert plateau.remedies[0] == "increase_lr"
    factor = plateau.evidence["lr_factor"]
    assert 1e3 <= factor <= 1e5  # Adam moves each weight by ~lr per step; weights here are ~0.13 RMS
    raised, _ = _train(1e-7 * factor, 150, watch=False)
    assert sum(raised[-20:]) / 20 < 0.7 * sum(losses[-20:]) / 20  # the suggested learning rate learns
