"""A vanilla nn.RNN's outputs are its tanh/ReLU hidden states: checkup reads them for saturation and dead units; a
GRU's and an LSTM's hidden states are bounded by 1 too and read for saturation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradient_doctor as gd


class LastStep(nn.Module):
    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(rnn.hidden_size, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _findings(model: nn.Module, x: torch.Tensor) -> dict:
    return {f.kind: f for f in gd.checkup(model, x).findings if f.severity != "info"}


def test_saturated_tanh_rnn_is_found_with_the_plain_torch_fraction():
    torch.manual_seed(0)
    rnn = nn.RNN(4, 32, batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.mul_(50)
    x = torch.randn(64, 20, 4)
    with torch.no_grad():
        h = rnn(x)[0]
    fraction = float((h.abs() >= 0.98).double().mean())  # within 1 % of the range [-1, 1] from a bound
    assert fraction > 0.5
    finding = _findings(LastStep(rnn), x)["saturated_activation"]
    assert finding.evidence["saturated_frac"]["rnn"] == pytest.approx(fraction, abs=1e-4)


def test_dead_relu_rnn_units_are_found_and_a_healthy_rnn_is_not_flagged():
    torch.manual_seed(0)
    rnn = nn.RNN(4, 32, nonlinearity="relu", batch_first=True)
    with torch.no_grad():
        rnn.bias_ih_l0[:24] = -10.0  # 24 of 32 units never fire on N(0, 1) inputs
    x = torch.randn(64, 20, 4)
    with torch.no_grad():
        dead = float((rnn(x)[0].amax(dim=(0, 1)) == 0).double().mean())
    assert dead >= 0.75
    finding = _findings(LastStep(rnn), x)["dead_units"]
    assert finding.evidence["dead_frac"]["rnn"] == pytest.approx(dead, abs=1e-4)  # evidence keeps 4 decimals
    torch.manual_seed(0)
    healthy = _findings(LastStep(nn.RNN(4, 32, batch_first=True)), torch.randn(64, 20, 4))
    assert "saturated_activation" not in healthy and "dead_units" not in healthy


@pytest.mark.parametrize("kind", [nn.GRU, nn.LSTM])
def test_saturated_gated_hidden_states_are_found_with_the_plain_torch_fraction(kind):
    torch.manual_seed(0)
    rnn = kind(4, 32, batch_first=True)
    with torch.no_grad():
        if kind is nn.GRU:
            rnn.weight_ih_l0.mul_(200)  # gates and candidate deep in their tails
        else:  # h = o tanh(c) nears ±1 only with the output gate open and |c| large: gates i, f, o held open,
            rnn.weight_ih_l0[64:96].mul_(200)  # the candidate g saturated, so c walks by ±1 a step
            rnn.bias_ih_l0[:64], rnn.bias_ih_l0[96:] = 10.0, 10.0
    x = torch.randn(64, 60, 4)
    with torch.no_grad():
        h = rnn(x)[0]
    fraction = float((h.abs() >= 0.98).double().mean())
    assert fraction > 0.5
    finding = _findings(LastStep(rnn), x)["saturated_activation"]
    assert finding.evidence["saturated_frac"]["rnn"] == pytest.approx(fraction, abs=1e-4)
    torch.manual_seed(0)
    assert "saturated_activation" not in _findings(LastStep(kind(4, 32, batch_first=True)), torch.randn(64, 60, 4))
