"""Odd data is data (issue 18, items 2 and 5): an empty batch leaves recording on and records what it can, and complex
parameters' norms are those of |z|, all checked against plain torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd


def _layer_norm(module: nn.Module, attr: str = "grad") -> float:
    """Plain torch: the L2 norm of a module's own parameters' gradients (or values), |z| for complex entries."""
    tensors = [getattr(p, attr) if attr == "grad" else p for p in module.parameters(recurse=False)]
    return float(torch.sqrt(sum(t.detach().abs().double().pow(2).sum() for t in tensors)))


@pytest.mark.parametrize("sizes", [(0, 3, 0, 2, 1), (4, 0, 0, 4)], ids=["empty first", "empty in the middle"])
def test_an_empty_batch_is_recorded_and_recording_goes_on(sizes):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    expected_grad, expected_relu_mean, losses = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "switched itself off" warning
        with gd.watch(model, opt, activation_every=1, detail_every=1) as run:
            for n in sizes:
                x = torch.randn(n, 3)
                loss = model(x).pow(2).sum() / max(n, 1)
                opt.zero_grad()
                loss.backward()
                expected_grad.append([_layer_norm(model[i]) for i in (0, 2, 4)])
                with torch.no_grad():
                    relu = model[1](model[0](x))
                expected_relu_mean.append(float(relu.double().mean()) if n else np.nan)
                losses.append(float(loss.detach()))
                opt.step()
                run.step(loss=loss)
    np.testing.assert_array_equal(run.steps, np.arange(len(sizes)))  # every step recorded, step 0 included
    np.testing.assert_allclose(run.history("grad_norm")[:, [0, 2, 4]], expected_grad, rtol=1e-6)
    np.testing.assert_allclose(run.history("act_mean", layer="1"), expected_relu_mean, rtol=1e-6)  # NaN: not measured
    empty = np.array(sizes) == 0
    for metric in ("act_std", "zero_frac", "dead_frac", "saturated_frac"):
        assert np.isnan(run.history(metric)[empty]).all()
    assert np.isfinite(run.history("dead_frac", layer="1")[~empty]).all()
    assert np.isfinite(run.history("saturated_frac", layer="3")[~empty]).all()
    np.testing.assert_allclose(run.history("loss"), losses, rtol=1e-6)


def test_complex_parameters_norms_are_those_of_the_moduli():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype=torch.complex64), nn.Linear(4, 2, dtype=torch.complex64))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    expected = {m: [] for m in ("grad_norm", "grad_max", "weight_norm", "update_norm")}
    with gd.watch(model, opt, detail_every=1, update_every=1, activations=False) as run:
        for _ in range(3):
            x = torch.randn(5, 3, dtype=torch.complex64)
            loss = model(x).abs().pow(2).sum()
            opt.zero_grad()
            loss.backward()
            before = [p.detach().clone() for p in model.parameters()]
            expected["grad_norm"].append([_layer_norm(layer) for layer in model])
            expected["grad_max"].append([max(float(p.grad.abs().max()) for p in layer.parameters()) for layer in model])
            opt.step()
            run.step(loss=loss)
            after = list(model.parameters())
            expected["weight_norm"].append([_layer_norm(layer, "data") for layer in model])
            moved = [float((a.detach() - b).abs().double().pow(2).sum()) for a, b in zip(after, before)]
            expected["update_norm"].append([np.sqrt(moved[0] + moved[1]), np.sqrt(moved[2] + moved[3])])
    for metric, values in expected.items():
        np.testing.assert_allclose(run.history(metric), values, rtol=1e-5, err_msg=metric)
