"""The CPU's cheap per-step paths: a step's vector assembled in a numpy buffer, and the guard's totals read on the
host, against the tensor assembly of the same statistics (bit for bit) and against plain torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gradient_doctor.probe import LAYER_METRICS, Cadence, Probe


def _trained_vectors(on_host: bool, steps: int = 6) -> tuple[Probe, list]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 7), nn.ReLU(inplace=True), nn.Linear(7, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    probe = Probe(model, optimizer, cadence=Cadence(1, 2, 3, 2))
    probe._on_host = on_host
    probe.attach()
    generator = torch.Generator().manual_seed(1)
    try:
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            model(torch.randn(16, 5, generator=generator)).pow(2).mean().backward()
            optimizer.step()
    finally:
        probe.detach()
    return probe, probe.completed


def test_step_vectors_assembled_on_the_host_equal_the_tensor_assembly_bit_for_bit():
    host_probe, host = _trained_vectors(on_host=True)
    _, tensor = _trained_vectors(on_host=False)
    assert [v.groups for v in host] == [v.groups for v in tensor]
    assert {"detail", "update", "activation"} <= {g for v in host for g in v.groups}
    for a, b in zip(host, tensor):
        assert a.values.dtype == b.values.dtype == torch.float64 and a.values.shape == (host_probe.width,)
        assert torch.equal(a.values.nan_to_num(-7.0), b.values.nan_to_num(-7.0)), a.step


def test_host_assembled_gradient_norms_match_plain_torch():
    """The last step's grad_norm row against the norms of the layers' gradients computed with plain torch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the gradients stay readable after the step
    probe = Probe(model, optimizer, cadence=Cadence(1, 0, 0, 0))
    probe.attach()
    try:
        model(torch.randn(16, 5)).pow(2).mean().backward()
        optimizer.step()
    finally:
        probe.detach()
    n = len(probe.layers)
    row = probe.completed[-1].values[LAYER_METRICS.index("grad_norm") * n:][:n]
    expected = [math.sqrt(float(model[0].weight.grad.double().square().sum() + model[0].bias.grad.double().square().sum())),
                math.nan,
                math.sqrt(float(model[2].weight.grad.double().square().sum() + model[2].bias.grad.double().square().sum()))]
    names = [layer.name for layer in probe.layers]
    got = [float(row[names.index(name)]) for name in ("0", "1", "2")]
    assert got == pytest.approx(expected, rel=1e-6, nan_ok=True)


@pytest.mark.parametrize("step", [0, 1])  # a detail step (tensor statistics) and an every-step one (host rows)
def test_gradient_totals_are_the_sum_of_squares_and_the_non_finite_count(step):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, optimizer, cadence=Cadence(1, 2, 0, 0), first_step=step)
    model(torch.randn(16, 5)).pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    squares = float(sum(g.double().square().sum() for g in grads))
    assert probe.gradient_totals() == pytest.approx((squares, 0.0), rel=1e-6)  # no statistics yet: one pass
    probe._before_step()
    assert probe.gradient_totals() == pytest.approx((squares, 0.0), rel=1e-6)
    grads[2].view(-1)[:3] = torch.tensor([math.inf, math.nan, -math.inf])
    probe._gradient_rows = None
    probe._before_step()
    found_squares, nonfinite = probe.gradient_totals()
    others = float(sum(g.double().square().sum() for i, g in enumerate(grads) if i != 2))
    assert nonfinite == 3.0 and found_squares == pytest.approx(others, rel=1e-6)  # a NaN norm is left out of the sum
    assert all(isinstance(x, float) for x in probe.gradient_totals())


def test_input_counts_kept_on_the_host_are_those_of_plain_torch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, optimizer, cadence=Cadence(1, 0, 0, 0))
    probe.attach()
    x = torch.randn(8, 4)
    x[0, 0], x[3, 2] = math.nan, math.inf
    try:
        for _ in range(2):  # two forward passes before one step: their counts add up
            model(x).sum().backward()
        optimizer.step()
    finally:
        probe.detach()
    assert probe.completed[-1].input_nonfinite == 2 * float((~torch.isfinite(x)).sum())
    assert np.isfinite(probe.completed[-1].values.numpy()).any()
