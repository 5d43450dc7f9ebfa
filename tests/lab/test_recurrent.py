"""`gradient-doctor lab recurrent --quick`: the LSTM with a forget-gate bias learns the adding problem at T=100
where the tanh RNN does not, and the numbers it reports match a plain-torch recomputation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import adding
from gradient_doctor.lab.experiments.recurrent import QUICK


@pytest.fixture(scope="module")
def result(quick_lab):
    return quick_lab("recurrent")[0]


def _row(result, cell):
    return next(r for r in result.rows if r["cell"] == cell and r["task"] == "adding" and r["T"] == 100)


def _plain_model(cell: str) -> nn.Module:
    """The quick run's model at init, rebuilt in plain torch (same seed, same order of random draws)."""
    torch.manual_seed(0)
    hidden = QUICK.hidden
    if cell == "tanh":
        rnn = nn.RNN(2, hidden, batch_first=True)
    else:  # chrono init (Tallec & Ollivier 2018): b_f ~ log U(1, T - 1), b_i = -b_f, hh biases zero; gates i, f, g, o
        rnn = nn.LSTM(2, hidden, batch_first=True)
        with torch.no_grad():
            b_f = rnn.bias_ih_l0[hidden:2 * hidden]
            b_f.uniform_(1.0, 100 - 1.0).log_()
            rnn.bias_hh_l0[hidden:2 * hidden].zero_()
            rnn.bias_ih_l0[:hidden].copy_(-b_f)
            rnn.bias_hh_l0[:hidden].zero_()
    head = nn.Linear(hidden, 1)
    return nn.ModuleDict({"rnn": rnn, "head": head})


def _predict(model: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
    out, _ = model["rnn"](x)
    return model["head"](out[:, -1]).squeeze(-1)


def test_lstm_with_forget_bias_beats_tanh_rnn_on_adding_at_t100(result):
    tanh, lstm = _row(result, "tanh"), _row(result, "lstm_chrono")
    assert tanh["relative_loss"] > 0.8  # the tanh RNN stays near the trivial baseline
    assert lstm["relative_loss"] < 0.25 and lstm["relative_loss"] < 0.25 * tanh["relative_loss"]
    assert lstm["solved_at"] is not None and tanh["solved_at"] is None
    assert lstm["horizon_final"] > 3 * tanh["horizon_final"]
    verdicts = {c.claim.split(" (")[0]: c.verdict for c in result.claims}
    assert verdicts["LSTM solves the vanishing gradient problem for sequences"] in ("holds", "holds with conditions")


def test_initial_loss_matches_plain_torch(result):
    x, y = adding(QUICK.test_size, 100, seed=10_000)
    for cell in ("tanh", "lstm_chrono"):
        with torch.no_grad():
            mse = ((_predict(_plain_model(cell), x) - y) ** 2).mean().item()
        assert _row(result, cell)["relative_curve"][0] == pytest.approx(mse * 6, rel=1e-3)


def test_memory_horizon_at_init_matches_plain_torch_gradients(result):
    """‖∂L/∂x_t‖ (over the batch) for a random Gaussian readout of the last step's output, relative to t = T: the
    horizon is the number of steps back while it stays >= e^-3. Another readout draw, so a small tolerance."""
    x, _ = adding(64, 100, seed=20_000)
    horizons = {}
    for cell in ("tanh", "lstm_chrono"):
        rnn = _plain_model(cell)["rnn"]
        x_ = x.clone().requires_grad_(True)
        out, _ = rnn(x_)
        readout = torch.randn(out[:, -1].shape, generator=torch.Generator().manual_seed(1))  # per sample and unit
        (out[:, -1] * readout).sum().backward()
        norms = x_.grad.norm(dim=(0, 2))
        relative = (norms / norms[-1]).flip(0)[1:]
        below = (relative < math.exp(-3)).nonzero()
        horizons[cell] = int(below[0]) if len(below) else len(relative)
        reported = _row(result, cell)["horizon_init"]
        assert abs(reported - horizons[cell]) <= max(2, 0.25 * horizons[cell]), (cell, reported, horizons[cell])
    assert horizons["lstm_chrono"] > 5 * horizons["tanh"]
