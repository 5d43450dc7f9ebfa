"""The loss-oscillation rule on real training runs, each scenario's label checked by an independent plain-torch/numpy
computation: oscillating runs (full-batch GD above a minimum's stability limit) and controls that must stay silent
(minibatch noise, a plateau, a smooth descent, a quadratic whose iterate flips sign but whose loss does not, a
diverging run, and a dead network whose loss zigzags in its last float32 digits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.diagnose.run.oscillation import loss_oscillation
from gradient_doctor.probe.metrics import LAYER_METRICS
from gradient_doctor.record.history import History
from tests.diagnose.run.test_diagnose import IN, batches, data, finding, kinds, mlp


def labels() -> torch.Tensor:
    """Two classes from the teacher's targets: above or below their median."""
    _, y = data()
    return (y[:, 0] > y.median()).long()


def fit(model: nn.Module, optimizer, steps: int, loss_fn, minibatch: bool = False) -> tuple[gd.Run, np.ndarray]:
    """Train under gd.watch (loss recorded on every step), full-batch unless `minibatch`; also return the losses
    as plain torch computed them."""
    x, y = data()
    target = y if loss_fn is nn.functional.mse_loss else labels()
    picks = batches(x, target, steps) if minibatch else [(x, target)] * steps
    losses = []
    with gd.watch(model, optimizer) as run:
        for xb, tb in picks:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), tb)
            loss.backward()
            optimizer.step()
            run.step(loss=loss)
            losses.append(loss.item())
    return run, np.array(losses)


def alternation(loss: np.ndarray) -> float:
    """The share of steps on which the sign of loss_t − loss_(t−1) flips: 2/3 for white noise, 1 for a zigzag."""
    d = np.sign(np.diff(loss))
    return float(np.mean(d[1:] != d[:-1]))


def crossing_and_swing(loss: np.ndarray) -> tuple[float, float]:
    """The rule's statistics, written out: the local level is (½ l[t−5] + l[t−4] + … + l[t+4] + ½ l[t+5]) / 10."""
    level = np.array([(0.5 * loss[t - 5] + loss[t - 4: t + 5].sum() + 0.5 * loss[t + 5]) / 10
                      for t in range(5, len(loss) - 5)])
    residual = loss[5:-5] - level
    above = residual > 0
    return float(np.mean(above[1:] != above[:-1])), float(np.median(np.abs(residual) / level))


def linear_regression(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """An ill-conditioned least-squares problem (feature scales 1 … 0.01): inputs, targets, λ_max of the MSE
    Hessian 2XᵀX/n, and its top eigenvector."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, IN, generator=g) * torch.logspace(0, -2, IN)
    y = x @ torch.randn(IN, 1, generator=g) + 0.1 * torch.randn(256, 1, generator=g)
    values, vectors = torch.linalg.eigh(2 * x.T @ x / len(x))
    return x, y, values[-1].item(), vectors[:, -1]


# -- oscillating -----------------------------------------------------------------------------------------------------

def test_logistic_regression_above_its_stability_limit_oscillates():
    """Full-batch GD at lr 60 on a logistic regression: above 2/λ_max at the minimum, so GD cannot settle there; the
    logistic loss flattens away from the minimum, so the iterate does not run off either: it bounces in a 2-cycle."""
    classes = labels()
    inputs, _ = data()
    torch.manual_seed(0)
    optimum = nn.Linear(IN, 2)
    lbfgs = torch.optim.LBFGS(optimum.parameters(), max_iter=500)

    def closure():
        lbfgs.zero_grad()
        loss = nn.functional.cross_entropy(optimum(inputs), classes)
        loss.backward()
        return loss

    lbfgs.step(closure)
    theta = torch.cat([p.detach().flatten() for p in optimum.parameters()])
    hessian = torch.autograd.functional.hessian(
        lambda p: nn.functional.cross_entropy(inputs @ p[: 2 * IN].view(2, IN).T + p[2 * IN:], classes), theta)
    lr = 60.0
    assert lr > 2 / torch.linalg.eigvalsh(hessian).max().item()  # beyond the minimum's stability limit

    torch.manual_seed(0)
    model = nn.Linear(IN, 2)
    run, loss = fit(model, torch.optim.SGD(model.parameters(), lr=lr), 200, nn.functional.cross_entropy)
    assert np.isfinite(loss).all() and alternation(loss) > 0.8  # the label: a zigzag, every step
    diag = run.diagnose()
    f = finding(diag, "loss_oscillation")
    assert "loss_divergence" not in kinds(diag)
    assert f.severity == "warning" and f.remedies[0] == "decrease_lr"
    crossing, swing = crossing_and_swing(loss)
    assert f.evidence["crossing_share"] == pytest.approx(crossing, rel=1e-3)
    assert f.evidence["swing"] == pytest.approx(swing, rel=1e-3)
    # the rationale cites the numbers measured here, formatted as in the line
    assert f"{crossing:.0%}" in f.rationale["decrease_lr"] and f"{swing:.1%}" in f.rationale["decrease_lr"]


def test_relu_mlp_with_full_batch_gd_at_a_too_high_lr_oscillates():
    model = mlp(3, nn.ReLU, he=True)
    model[-1] = nn.Linear(32, 2)
    run, loss = fit(model, torch.optim.SGD(model.parameters(), lr=16.0), 200, nn.functional.cross_entropy)
    assert np.isfinite(loss).all() and alternation(loss) > 0.8
    diag = run.diagnose()
    assert "loss_oscillation" in kinds(diag, "warning") and "loss_divergence" not in kinds(diag)


# -- controls --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer, lr, steps", [("SGD", 0.05, 200), ("Adam", 1e-3, 200), ("SGD", 1e-7, 150)])
def test_minibatch_noise_smooth_or_flat_does_not_oscillate(optimizer, lr, steps):
    """Minibatch losses (noisy, falling or flat at lr 1e-7): their differences flip sign about 2/3 of the time, as
    white noise's do, but the losses do not zigzag across their level."""
    model = mlp(4, nn.ReLU, he=True)
    run, loss = fit(model, getattr(torch.optim, optimizer)(model.parameters(), lr=lr), steps, nn.functional.mse_loss,
                    minibatch=True)
    assert 0.5 < alternation(loss) < 0.8 and crossing_and_swing(loss)[0] < 0.7
    assert "loss_oscillation" not in kinds(run.diagnose())


def test_a_smooth_full_batch_descent_does_not_oscillate():
    model = mlp(4, nn.ReLU, he=True)
    run, loss = fit(model, torch.optim.SGD(model.parameters(), lr=0.05), 200, nn.functional.mse_loss)
    assert alternation(loss) < 0.1 and loss[-1] < loss[0] / 5
    assert "loss_oscillation" not in kinds(run.diagnose())


@pytest.mark.parametrize("factor", [1.95, 2.2])
def test_a_quadratic_flips_its_iterate_not_its_loss(factor):
    """Least squares, full-batch GD at lr = factor/λ_max: the iterate's component along the top eigenvector
    changes sign every step, but on a quadratic each eigen-direction's share of the loss, λ/2 c² (1 − lr λ)^2t,
    moves one way only: below 2/λ_max it falls every step (no oscillation), above it rises every step (divergence, not
    oscillation)."""
    x, y, top, direction = linear_regression()
    model = nn.Linear(IN, 1, bias=False)
    nn.init.zeros_(model.weight)
    lr = factor / top
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    solution = torch.linalg.lstsq(x, y).solution[:, 0]
    loss, component = [], []
    with gd.watch(model, optimizer) as run:
        for _ in range(100):
            optimizer.zero_grad()
            value = nn.functional.mse_loss(model(x), y)
            value.backward()
            optimizer.step()
            run.step(loss=value)
            loss.append(value.item())
            component.append(((model.weight.detach()[0] - solution) @ direction).item())
    signs = np.sign(component)
    assert np.mean(signs[1:] != signs[:-1]) > 0.95  # the iterate flips sign along the top eigenvector
    diag = run.diagnose()
    assert "loss_oscillation" not in kinds(diag)
    if factor < 2:
        assert (np.diff(loss) < 0).all()
    else:
        assert (np.diff(loss[10:]) > 0).all() and loss[-1] > 1e6 * loss[0]


def test_a_dead_network_zigzagging_in_float32_rounding_is_not_an_oscillation():
    """Full-batch GD at lr 0.7 kills this ReLU net: its loss sits at the targets' variance and zigzags across its
    level on most steps, but in the last float32 digits: the swing floor (5 % of the level) keeps it silent."""
    model = mlp(3, nn.ReLU, he=True)
    run, loss = fit(model, torch.optim.SGD(model.parameters(), lr=0.7), 200, nn.functional.mse_loss)
    crossing, swing = crossing_and_swing(loss[100:])
    assert crossing > 0.8 and swing < 1e-6
    assert "loss_oscillation" not in kinds(run.diagnose())


# -- the rule on hand-made series --------------------------------------------------------------------------------------

def history(loss: np.ndarray) -> History:
    steps = len(loss)
    return History(["0"], np.array([10]), np.arange(steps), {m: np.full((steps, 1), np.nan) for m in LAYER_METRICS},
                   loss, float(np.median(loss[:5])))


def test_a_rising_zigzag_is_divergence_and_short_windows_are_not_judged():
    zigzag = 1.0 + 0.2 * (-1.0) ** np.arange(200)
    (f,) = loss_oscillation(history(zigzag))
    assert f.evidence["crossing_share"] == 1.0 and f.evidence["swing"] == pytest.approx(0.2, rel=1e-6)
    assert loss_oscillation(history(zigzag[:49])) == [] and len(loss_oscillation(history(zigzag[:50]))) == 1
    assert loss_oscillation(history(zigzag + np.linspace(0, 5, 200))) == []  # rising: the divergence rule's
    assert loss_oscillation(history(zigzag - 3.0)) == []  # a negative level: no relative swing
    small = 1.0 + 0.04 * (-1.0) ** np.arange(200)  # a 4 % swing: below the floor
    assert loss_oscillation(history(small)) == []
