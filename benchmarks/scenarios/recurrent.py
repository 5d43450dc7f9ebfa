"""Recurrent scenarios (nn.RNN tanh/relu, LSTM, GRU) on the sum-sign task (30 steps) and the adding problem
(100 steps), read out at the last step.

    >>> [s.name for s in SCENARIOS if s.family == "lstm"]

Healthy recurrent nets keep ‖∂L/∂s_1‖/‖∂L/∂s_T‖ sane at init: an orthogonal or identity recurrent matrix for
vanilla RNNs, a remember-gate bias (LSTM forget gate, GRU update gate) of 2–3 for the gated ones; with PyTorch's
default init the gated nets forget within a few dozen steps, which is what the vanishing scenarios use.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .base import Scenario, Setup
from .sequence_common import (Data, adding_data, bad_scale_check, dead_check, exploding_check, healthy_check,
                              non_finite_check, plateau_check, saturation_check, sequence_setup, sum_sign_data,
                              time_ratio, vanishing_check)

SUM, ADD = 30, 100   # sequence lengths of the sum-sign task and the adding problem


class LastStep(nn.Module):
    """A batch-first recurrent layer read out at its last step by a Linear head (squeezed for one output).

    >>> LastStep(nn.GRU(1, 32, batch_first=True), out=2)(torch.randn(64, 30, 1)).shape
    torch.Size([64, 2])
    """

    def __init__(self, rnn: nn.RNNBase, out: int):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size, out)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        y = self.head(out[:, -1])
        return y.squeeze(-1) if y.shape[-1] == 1 else y


def net(kind: str, data: Data, hidden: int = 32, layers: int = 1, remember: float | None = None,
        recurrent: Callable[[Tensor], object] | None = None, input_gain: float = 1.0, bias: float | None = None,
        frozen_first: bool = False, seed: int = 0) -> LastStep:
    """A seeded LastStep over `kind` ("tanh", "relu": nn.RNN; "lstm", "gru") sized for `data`.

    >>> net("lstm", sum_sign_data(30), remember=3.0)    # forget-gate bias 3 (PyTorch's default init otherwise)

    `remember` sets the bias of the LSTM forget / GRU update gate (bias_ih; bias_hh of that gate 0), `recurrent`
    re-initialises weight_hh_l0 in place, `input_gain` scales weight_ih_l0, `bias` fills bias_ih_l0,
    `frozen_first` freezes the first layer's parameters.
    """
    torch.manual_seed(seed)
    (x, y), _ = data
    common = dict(input_size=x.shape[-1], hidden_size=hidden, num_layers=layers, batch_first=True)
    rnn = {"tanh": lambda: nn.RNN(nonlinearity="tanh", **common), "relu": lambda: nn.RNN(nonlinearity="relu", **common),
           "lstm": lambda: nn.LSTM(**common), "gru": lambda: nn.GRU(**common)}[kind]()
    with torch.no_grad():
        if remember is not None:
            for layer in range(layers):
                getattr(rnn, f"bias_ih_l{layer}")[hidden:2 * hidden] = remember
                getattr(rnn, f"bias_hh_l{layer}")[hidden:2 * hidden] = 0.0
        if recurrent is not None:
            recurrent(rnn.weight_hh_l0)
        rnn.weight_ih_l0.mul_(input_gain)
        if bias is not None:
            rnn.bias_ih_l0.fill_(bias)
    if frozen_first:
        for name, parameter in rnn.named_parameters():
            parameter.requires_grad_(not name.endswith("_l0"))
    return LastStep(rnn, 1 if y.is_floating_point() else 2)


def _orthogonal(gain: float) -> Callable[[Tensor], object]:
    return lambda weight: nn.init.orthogonal_(weight, gain=gain)


def _identity(gain: float) -> Callable[[Tensor], object]:
    return lambda weight: weight.copy_(gain * torch.eye(weight.shape[0]))


def _scaled(data: Data, scale: float = 1.0, shift: float = 0.0) -> Data:
    (x, y), (x_test, y_test) = data
    return (x * scale + shift, y), (x_test * scale + shift, y_test)


def _with_inf(data: Data, step: int, batch_size: int = 64) -> Data:
    """The data with one +Inf input value in the first sample of training batch `step`."""
    (x, y), test = data
    x = x.clone()
    x[step * batch_size, 0, 0] = float("inf")
    return (x, y), test


def _scenario(name: str, family: str, label: str, split: str, steps: int, make: Callable[[], Setup],
              check: Callable[[Setup], str], variant: str, reference: str | None = None) -> Scenario:
    return Scenario(name, family, label, split, steps, make, check, reference, variant)


# Healthy references (make functions are named so broken scenarios can point at them).
def _lstm_sum() -> Setup:
    return sequence_setup(net("lstm", sum_sign_data(SUM), remember=3.0), sum_sign_data(SUM), "adam", 1e-2)


def _gru_sum() -> Setup:
    return sequence_setup(net("gru", sum_sign_data(SUM), remember=2.0), sum_sign_data(SUM), "adam", 1e-2)


def _tanh_sum() -> Setup:
    return sequence_setup(net("tanh", sum_sign_data(SUM), recurrent=_orthogonal(1.0)), sum_sign_data(SUM), "adam",
                          1e-2)


def _relu_sum() -> Setup:
    return sequence_setup(net("relu", sum_sign_data(SUM), recurrent=_identity(1.0)), sum_sign_data(SUM), "adam",
                          1e-3)


def _lstm_add() -> Setup:
    return sequence_setup(net("lstm", adding_data(ADD), remember=3.0), adding_data(ADD), "adam", 1e-2)


def _sum(kind: str, optimizer: str, lr: float, data: Data | None = None, **options: object) -> Callable[[], Setup]:
    return lambda: sequence_setup(net(kind, data or sum_sign_data(SUM), **options), data or sum_sign_data(SUM),
                                  optimizer, lr)


def _add(kind: str, optimizer: str, lr: float, **options: object) -> Callable[[], Setup]:
    return lambda: sequence_setup(net(kind, adding_data(ADD), **options), adding_data(ADD), optimizer, lr)


def _amp(make: Callable[[], Setup]) -> Callable[[], Setup]:
    def build() -> Setup:
        setup = make()
        setup.autocast = torch.bfloat16
        return setup
    return build


HEALTHY = healthy_check(time_ratio)

SCENARIOS = [
    # --- healthy controls --------------------------------------------------------------------------------------
    _scenario("lstm_sum30_healthy", "lstm", "healthy", "dev", 150, _lstm_sum, HEALTHY,
              "LSTM 32, forget bias 3, sum-sign T=30, Adam 1e-2"),
    _scenario("gru_sum30_healthy", "gru", "healthy", "test", 150, _gru_sum, HEALTHY,
              "GRU 32, update-gate bias 2, sum-sign T=30, Adam 1e-2"),
    _scenario("rnn_tanh_sum30_healthy", "rnn", "healthy", "dev", 150, _tanh_sum, HEALTHY,
              "tanh RNN 32, orthogonal recurrent init, sum-sign T=30, Adam 1e-2"),
    _scenario("rnn_relu_sum30_identity_healthy", "rnn", "healthy", "test", 150, _relu_sum, HEALTHY,
              "IRNN: ReLU RNN 32, identity recurrent init, sum-sign T=30, Adam 1e-3"),
    _scenario("lstm_adding100_healthy", "lstm", "healthy", "test", 150, _lstm_add, HEALTHY,
              "hard negative: LSTM 32, forget bias 3, adding problem T=100, Adam 1e-2"),
    _scenario("lstm_sum30_amp_healthy", "lstm", "healthy", "test", 150, _amp(_lstm_sum), HEALTHY,
              "AMP control: LSTM 32, forget bias 3, bfloat16 autocast, Adam 1e-2"),
    _scenario("gru2_sum30_frozen_first_healthy", "gru", "healthy", "dev", 150,
              _sum("gru", "adam", 1e-2, layers=2, remember=2.0, frozen_first=True), HEALTHY,
              "frozen-layer control: 2-layer GRU 32, first layer frozen, Adam 1e-2"),
    _scenario("gru_sum30_momentum_healthy", "gru", "healthy", "dev", 150,
              _sum("gru", "momentum", 0.1, remember=2.0), HEALTHY, "GRU 32, update-gate bias 2, SGD momentum 0.1"),
    # --- vanishing (time) --------------------------------------------------------------------------------------
    _scenario("rnn_tanh_adding100_vanishing", "rnn", "vanishing", "dev", 150, _add("tanh", "adam", 1e-3),
              vanishing_check(time_ratio), "tanh RNN 32, default init, adding T=100, Adam 1e-3",
              "lstm_adding100_healthy"),
    _scenario("gru_adding100_vanishing", "gru", "vanishing", "dev", 150, _add("gru", "adam", 1e-2),
              vanishing_check(time_ratio), "GRU 32, default init, adding T=100, Adam 1e-2", "lstm_adding100_healthy"),
    _scenario("lstm_adding100_default_vanishing", "lstm", "vanishing", "test", 150, _add("lstm", "adam", 1e-2),
              vanishing_check(time_ratio), "LSTM 32, default init (forget bias 0), adding T=100, Adam 1e-2",
              "lstm_adding100_healthy"),
    _scenario("rnn_tanh_adding100_momentum_vanishing", "rnn", "vanishing", "test", 150,
              _add("tanh", "momentum", 1e-2, hidden=64), vanishing_check(time_ratio),
              "tanh RNN 64, default init, adding T=100, SGD momentum 1e-2", "lstm_adding100_healthy"),
    # --- exploding (time) --------------------------------------------------------------------------------------
    _scenario("rnn_relu_sum30_gain1.3_exploding", "rnn", "exploding", "dev", 150,
              _sum("relu", "adam", 1e-3, recurrent=_identity(1.3)), exploding_check(time_ratio),
              "ReLU RNN 32, recurrent 1.3 x identity, Adam 1e-3", "rnn_relu_sum30_identity_healthy"),
    _scenario("rnn_relu_sum30_gain1.5_exploding", "rnn", "exploding", "test", 150,
              _sum("relu", "adamw", 1e-3, hidden=64, recurrent=_identity(1.5)), exploding_check(time_ratio),
              "ReLU RNN 64, recurrent 1.5 x identity, AdamW 1e-3", "rnn_relu_sum30_identity_healthy"),
    # --- saturation --------------------------------------------------------------------------------------------
    _scenario("rnn_tanh_sum30_inputgain200_saturation", "rnn", "saturation", "dev", 150,
              _sum("tanh", "adam", 1e-2, recurrent=_orthogonal(1.0), input_gain=200.0), saturation_check(nn.RNN),
              "tanh RNN 32, orthogonal, input weights x200, Adam 1e-2", "rnn_tanh_sum30_healthy"),
    _scenario("rnn_tanh_sum30_inputgain200_momentum_saturation", "rnn", "saturation", "test", 150,
              _sum("tanh", "momentum", 1e-2, hidden=64, recurrent=_orthogonal(1.0), input_gain=200.0),
              saturation_check(nn.RNN), "tanh RNN 64, orthogonal, input weights x200, SGD momentum 1e-2",
              "rnn_tanh_sum30_healthy"),
    _scenario("gru_sum30_inputgain200_saturation", "gru", "saturation", "test", 150,
              _sum("gru", "adam", 1e-2, remember=2.0, input_gain=200.0), saturation_check(nn.GRU),
              "GRU 32, update-gate bias 2, input weights x200 (gates and candidate saturate), Adam 1e-2",
              "gru_sum30_healthy"),
    # --- dead units --------------------------------------------------------------------------------------------
    _scenario("rnn_relu_sum30_bias-3_dead", "rnn", "dead_units", "dev", 150,
              _sum("relu", "adam", 1e-3, recurrent=_identity(1.0), bias=-3.0), dead_check(nn.RNN),
              "ReLU RNN 32, identity, input bias -3, Adam 1e-3", "rnn_relu_sum30_identity_healthy"),
    _scenario("rnn_relu_sum30_bias-3_sgd_dead", "rnn", "dead_units", "test", 150,
              _sum("relu", "sgd", 1e-2, hidden=64, recurrent=_identity(1.0), bias=-3.0), dead_check(nn.RNN),
              "ReLU RNN 64, identity, input bias -3, SGD 1e-2", "rnn_relu_sum30_identity_healthy"),
    # --- non-finite --------------------------------------------------------------------------------------------
    _scenario("lstm_adding100_sgd_lr_nonfinite", "lstm", "non_finite", "dev", 150,
              _add("lstm", "sgd", 10.0, remember=3.0), non_finite_check(150),
              "LSTM 32, forget bias 3, adding T=100, SGD lr 10 (MSE head diverges)", "lstm_adding100_healthy"),
    _scenario("gru_sum30_inf_input_nonfinite", "gru", "non_finite", "test", 150,
              _sum("gru", "adam", 1e-2, data=_with_inf(sum_sign_data(SUM), step=3), remember=2.0),
              non_finite_check(150), "GRU 32, update-gate bias 2, one +Inf input in batch 3, Adam 1e-2",
              "gru_sum30_healthy"),
    _scenario("gru_adding100_momentum_lr1_nonfinite", "gru", "non_finite", "test", 150,
              _add("gru", "momentum", 1.0, remember=2.0), non_finite_check(150),
              "GRU 32, update-gate bias 2, adding T=100, SGD momentum at lr 1 (the MSE loss diverges to NaN)",
              "lstm_adding100_healthy"),
    # --- plateau (learning rate far too small) -----------------------------------------------------------------
    _scenario("lstm_sum30_lr1e-7_plateau", "lstm", "plateau", "dev", 150,
              _sum("lstm", "adam", 1e-7, remember=3.0), plateau_check(150, _lstm_sum),
              "LSTM 32, forget bias 3, Adam 1e-7", "lstm_sum30_healthy"),
    _scenario("gru_sum30_momentum_lr1e-7_plateau", "gru", "plateau", "test", 150,
              _sum("gru", "momentum", 1e-7, remember=2.0), plateau_check(150, _gru_sum),
              "GRU 32, update-gate bias 2, SGD momentum 1e-7", "gru_sum30_healthy"),
    # --- bad data scale ----------------------------------------------------------------------------------------
    _scenario("gru_sum30_offset50_bad_scale", "gru", "bad_data_scale", "dev", 150,
              _sum("gru", "adam", 1e-2, data=_scaled(sum_sign_data(SUM), shift=50.0), remember=2.0),
              bad_scale_check(150), "GRU 32, update-gate bias 2, inputs + 50, Adam 1e-2", "gru_sum30_healthy"),
    _scenario("lstm_sum30_x100_bad_scale", "lstm", "bad_data_scale", "test", 150,
              _sum("lstm", "adam", 1e-2, data=_scaled(sum_sign_data(SUM), scale=100.0), remember=3.0),
              bad_scale_check(150), "LSTM 32, forget bias 3, inputs x 100, Adam 1e-2", "lstm_sum30_healthy"),
]
