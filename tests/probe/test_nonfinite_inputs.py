"""Inf/NaN in the data: the watch counts them in the model's inputs on device, and both checkup and the run's
diagnosis put them before any layer, with the data (`check_inputs`) as the remedy, not the learning rate."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import gradient_doctor as gd


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_watch_counts_non_finite_inputs_and_diagnose_blames_the_data():
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(1)
    expected = []
    with gd.watch(model, optimizer) as run:
        for step in range(40):
            x = torch.randn(16, 4, generator=generator)
            if step in (33, 36):
                x[torch.rand(16, 4, generator=generator) < 0.1] = float("nan")
                x[0, 0] = float("inf")
            expected.append(float((~torch.isfinite(x)).sum()))  # plain torch, per step
            optimizer.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            optimizer.step()
            run.step(loss=loss)
        diagnosis = run.diagnose()
    np.testing.assert_array_equal(run.history("input_nonfinite"), expected)
    (finding,) = [f for f in diagnosis.findings if f.kind == "non_finite"]
    assert finding.evidence["where"] == "inputs" and finding.evidence["first_step"] == 33
    assert finding.evidence["input_nonfinite"] == expected[33] and finding.evidence["steps_with_bad_inputs"] == 2
    assert finding.remedies == ["check_inputs"]
    treatment = gd.treat(_model(), diagnosis, inputs=torch.randn(16, 4))
    # the data comes first; the NaN weights the bad batch left behind also read as exploding gradients
    assert treatment.advice[0] == "check_inputs" and treatment.applied == []


def test_checkup_puts_non_finite_inputs_before_the_first_layer():
    x = torch.randn(16, 4)
    x[3, 2] = float("nan")
    (finding,) = [f for f in gd.checkup(_model(), x).findings if f.kind == "non_finite"]
    assert (finding.evidence["where"], finding.remedies) == ("inputs", ["check_inputs"])
    broken = _model()
    with torch.no_grad():
        broken[2].weight[0, 0] = float("inf")  # a broken weight with finite data is not the data's fault
    (finding,) = [f for f in gd.checkup(broken, torch.randn(16, 4)).findings if f.kind == "non_finite"]
    assert finding.evidence["where"] == "weights"
