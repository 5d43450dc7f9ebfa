"""Recurrent inits: the LSTM forget-gate (GRU update-gate) bias, and identity recurrence for vanilla RNNs.

    >>> model = forget_gate_bias(model)                        # LSTM forget gates start open: b_f = 1
    >>> model = forget_gate_bias(model, chrono_t_max=200)      # chrono init for dependencies up to ~200 steps
    >>> model = identity_recurrent_init(nn.RNN(8, 64, nonlinearity="relu"))   # IRNN

A forget gate sigma(b_f) near 1 keeps the cell state, so the gradient through c_t = f * c_{t-1} + ... does not
shrink geometrically at initialisation (Gers et al. 2000; Jozefowicz et al. 2015: b_f = 1). Chrono init
(Tallec & Ollivier 2018) spreads the units' memory times over [1, T_max]: b_f ~ log(U(1, T_max - 1)), b_i = -b_f.
PyTorch gives every gate two biases (bias_ih and bias_hh, summed); the whole gate bias is put in bias_ih and the
bias_hh slice is zeroed, per layer and direction.

GRU: PyTorch computes h' = (1 - z) * n + z * h (gates r, z, n), so z plays the forget gate and a POSITIVE update-
gate bias keeps the state; `value` (or chrono's log(U(1, T_max - 1))) is put on z. GRU has no separate input gate.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ...errors import InvalidValue, NotApplicable
from ..surgery.modules import modules_of
from ..surgery.recurrent_params import Cell, cells, gate

_GATED = (nn.LSTM, nn.LSTMCell, nn.GRU, nn.GRUCell)
_VANILLA = (nn.RNN, nn.RNNCell)


def forget_gate_bias(model: nn.Module, *, value: float = 1.0, chrono_t_max: float | None = None) -> nn.Module:
    """Set the forget-gate bias of every nn.LSTM/LSTMCell (update gate of nn.GRU/GRUCell) to `value`, or draw
    chrono init when `chrono_t_max` (the longest dependency, in steps, > 2) is given; other gates are untouched.

        >>> lstm = forget_gate_bias(nn.LSTM(4, 8))
        >>> lstm.bias_ih_l0[8:16] + lstm.bias_hh_l0[8:16]       # the forget gate (order i, f, g, o)
        tensor([1., 1., 1., 1., 1., 1., 1., 1.], grad_fn=<AddBackward0>)
    """
    if chrono_t_max is not None and not chrono_t_max > 2:
        raise InvalidValue(f"chrono_t_max must be > 2 steps (b_f ~ log(U(1, T_max - 1))); got {chrono_t_max!r}")
    targets = [
        cell
        for _, module in modules_of(model, _GATED)
        for cell in cells(module)
        if cell.bias_ih is not None and cell.bias_hh is not None
    ]
    if not targets:
        raise NotApplicable("forget_gate_bias: the model has no nn.LSTM or nn.GRU (or cell) with biases")
    with torch.no_grad():
        for cell in targets:
            keep = "f" if cell.gates == "ifgo" else "z"
            forget = gate(cell.bias_ih, cell, keep)
            if chrono_t_max is None:
                forget.fill_(value)
            else:
                forget.uniform_(1.0, chrono_t_max - 1.0).log_()
            gate(cell.bias_hh, cell, keep).zero_()
            if chrono_t_max is not None and cell.gates == "ifgo":
                gate(cell.bias_ih, cell, "i").copy_(-forget)
                gate(cell.bias_hh, cell, "i").zero_()
    return model


def identity_recurrent_init(model: nn.Module, *, scale: float = 1.0, input_std: float = 1e-3) -> nn.Module:
    """IRNN (Le et al. 2015): every nn.RNN/RNNCell gets weight_hh = scale * I, zero biases and input weights
    N(0, input_std^2) (the paper's 0.001). Meant for ReLU RNNs: a tanh RNN is initialised too, with a warning.

        >>> rnn = identity_recurrent_init(nn.RNN(8, 16, nonlinearity="relu"))
        >>> torch.equal(rnn.weight_hh_l0, torch.eye(16))
        True
    """
    found = list(modules_of(model, _VANILLA))
    if not found:
        raise NotApplicable("identity_recurrent_init: the model has no nn.RNN or nn.RNNCell module")
    tanh = [name or type(module).__name__ for name, module in found if module.nonlinearity == "tanh"]
    if tanh:
        warnings.warn(f"identity_recurrent_init: {', '.join(tanh)} use(s) tanh; the identity recurrence (IRNN) is "
                      "meant for nonlinearity='relu' (Le et al. 2015). Initialised anyway.", stacklevel=2)
    with torch.no_grad():
        for _, module in found:
            for cell in cells(module):
                _irnn(cell, scale, input_std)
    return model


def _irnn(cell: Cell, scale: float, input_std: float) -> None:
    cell.weight_hh.copy_(scale * torch.eye(*cell.weight_hh.shape, dtype=cell.weight_hh.dtype,
                                           device=cell.weight_hh.device))
    cell.weight_ih.normal_(0.0, input_std)
    for bias in (cell.bias_ih, cell.bias_hh):
        if bias is not None:
            bias.zero_()
