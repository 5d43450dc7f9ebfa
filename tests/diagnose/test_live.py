"""Live checks: gd.watch(..., on_finding=..., stop_on=..., check_every=...) while training goes on."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import gradient_doctor as gd
from tests.diagnose.run.test_diagnose import batches, data, mlp


def _fit(model, opt, run, steps, *, poison_at=None, reached=None):
    """Plain loop; at iteration `poison_at` one weight becomes inf before the forward pass; `reached` collects the
    iterations whose optimizer.step() was called."""
    x, y = data()
    for t, (xb, yb) in enumerate(batches(x, y, steps)):
        if t == poison_at:
            with torch.no_grad():
                model[0].weight[0, 0] = math.inf
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(xb), yb)
        loss.backward()
        if reached is not None:
            reached.append(t)
        opt.step()
        run.step(loss=loss)


def test_stop_on_non_finite_stops_before_the_next_update_is_applied():
    model = mlp(4, nn.ReLU, he=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seen, reached = [], []
    with pytest.warns(RuntimeWarning, match="non_finite"):
        with pytest.raises(gd.TrainingStopped) as stopped:
            with gd.watch(model, opt, on_finding=seen.append, stop_on={"non_finite"}, check_every=1) as run:
                _fit(model, opt, run, 20, poison_at=7, reached=reached)
    finding = stopped.value.finding
    assert finding.kind == "non_finite" and seen == [finding]
    assert finding.evidence["first_step"] == 7 and finding.layers[0] == "0"
    # the check at the start of iteration 8's optimizer.step() raised out of it: steps 0-7 are recorded
    assert reached[-1] == 8 and list(run.steps) == list(range(8))


def test_a_finding_is_reported_once_while_training_goes_on():
    model = mlp(10, nn.Sigmoid)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=5, on_finding=seen.append,
                      check_every=20) as run:
            _fit(model, opt, run, 100)
    assert [f.kind for f in seen].count("vanishing_gradient") == 1
    assert len(run.steps) == 100  # reporting did not stop training
    reports = [str(w.message) for w in caught if " vanishing_gradient at " in str(w.message)]
    assert len(reports) == 1 and reports[0].startswith("gradient-doctor: ")
    # what was reported live is what the record says afterwards
    assert "vanishing_gradient" in {f.kind for f in run.diagnose().findings}


def test_a_healthy_run_reports_nothing():
    model = mlp(4, nn.ReLU, he=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen = []
    with gd.watch(model, opt, on_finding=seen.append, stop_on={"non_finite", "exploding_gradient"}, check_every=25) as run:
        _fit(model, opt, run, 100)
    assert seen == [] and len(run.steps) == 100


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"stop_on": {"nan"}}, ValueError, "non_finite"),
        ({"stop_on": "exploding"}, ValueError, "exploding"),
        ({"on_finding": 3}, TypeError, "int"),
        ({"check_every": 0}, ValueError, "check_every"),
        ({"check_every": 2.5}, ValueError, "check_every"),
    ],
)
def test_bad_live_arguments_are_refused_before_training(kwargs, error, match):
    model = nn.Linear(2, 2)
    hooks = dict(model._forward_pre_hooks)
    with pytest.raises(error, match=match):
        gd.watch(model, **kwargs)
    assert dict(model._forward_pre_hooks) == hooks


def test_a_failing_check_warns_once_and_training_goes_on(monkeypatch):
    def broken(self, window=None):
        raise RuntimeError("simulated diagnosis bug")

    monkeypatch.setattr(gd.Run, "diagnose", broken)
    model = mlp(4, nn.ReLU, he=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gd.watch(model, opt, stop_on={"non_finite"}, check_every=2) as run:
            _fit(model, opt, run, 10)
    assert len(run.steps) == 10
    assert len([w for w in caught if "live check failed" in str(w.message)]) == 1
