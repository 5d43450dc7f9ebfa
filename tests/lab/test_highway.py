"""lab highway (quick): the highway layer against its formula, the paper's widths (about the same parameters per
layer), and the rows."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.experiment import TOO_FEW
from gradient_doctor.lab.experiments._blocks import HIGHWAY_GATE_BIAS, Block
from gradient_doctor.lab.experiments.highway import build


def test_highway_layer_is_h_times_t_plus_x_times_carry():
    torch.manual_seed(0)
    block = Block("highway", 50)
    x = torch.randn(128, 50)
    with torch.no_grad():
        gate = torch.sigmoid(x @ block.second.weight.T + block.second.bias)
    expected = torch.relu(x @ block.first.weight.T + block.first.bias) * gate + x * (1 - gate)
    assert torch.allclose(block(x), expected, atol=1e-6)
    assert float(gate.mean()) == pytest.approx(1 / (1 + math.exp(-HIGHWAY_GATE_BIAS)), abs=0.03)  # mostly carry


def test_plain_and_highway_have_about_the_same_parameters_per_layer():
    torch.manual_seed(0)
    per_layer = {kind: (sum(p.numel() for p in build(kind, 20, 64).parameters())
                        - sum(p.numel() for p in build(kind, 10, 64).parameters())) / 10 for kind in ("plain", "highway")}
    assert per_layer["highway"] == 2 * (50 * 50 + 50)  # H and T
    assert per_layer["plain"] == 71 * 71 + 71
    assert abs(per_layer["plain"] / per_layer["highway"] - 1) < 0.01
    assert sum(isinstance(m, nn.Linear) for m in build("plain", 20, 64)) == 21


def test_rows(quick_lab):
    result, _ = quick_lab("highway")
    assert len(result.rows) == 2 * 2 and all(math.isfinite(r["test_accuracy"]) for r in result.rows)
    assert result.claims[0].verdict == TOO_FEW
