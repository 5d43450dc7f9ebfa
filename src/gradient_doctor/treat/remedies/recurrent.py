"""Gated recurrence: replace every vanilla `nn.RNN` by an LSTM or a GRU of the same shape.

    >>> model = to_lstm(model)            # every nn.RNN inside becomes an LSTMAsRNN (an nn.LSTM)
    >>> out, h = model.rnn(x)             # call sites written for nn.RNN keep working
    >>> to_gru(nn.RNN(8, 16, num_layers=2, batch_first=True))
    GRU(8, 16, num_layers=2, batch_first=True)

Gates give the gradient an additive path through time, so it need not shrink geometrically with the sequence
length as it does through a vanilla RNN's repeated tanh Jacobians (Hochreiter & Schmidhuber 1997; Pascanu et al.
2013). The new module has the RNN's input_size, hidden_size, num_layers, bias, batch_first, dropout and
bidirectional, freshly initialised (PyTorch's default) on the RNN's device and dtype and in its train/eval mode;
the RNN's weights are not carried over (the gate layout differs). A default LSTM still vanishes through long
sequences at initialisation: follow with `forget_gate_bias` (Jozefowicz et al. 2015).

nn.GRU is called and answers exactly like nn.RNN. nn.LSTM is not (its state is a pair), so the LSTM used here is
`LSTMAsRNN`, an nn.LSTM subclass whose forward keeps nn.RNN's signature: see its docstring.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ...errors import NotApplicable
from ..surgery.modules import place_like, replace_module


class LSTMAsRNN(nn.LSTM):
    """An nn.LSTM that is called and answers like nn.RNN: `output, h_n = lstm(x, h_0=None)`.

        >>> lstm = LSTMAsRNN(8, 16, num_layers=2)
        >>> out, h = lstm(x)             # h: (num_layers * directions, batch, hidden), as nn.RNN's h_n
        >>> out, h = lstm(x, h0)         # a tensor h_0 starts the cell state c_0 at zeros
        >>> out, h = lstm(x, (h0, c0))   # the full LSTM state is accepted as well

    The cell state c_n is not returned (nn.RNN has none); the parameters are nn.LSTM's (`weight_ih_l0`, ...), so
    it is an nn.LSTM for every isinstance check, initialiser and probe.
    """

    def forward(  # type: ignore[override]
        self, input: Tensor | PackedSequence, hx: Tensor | tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor | PackedSequence, Tensor]:
        if isinstance(hx, Tensor):
            hx = (hx, hx.new_zeros(hx.shape[:-1] + (self.hidden_size,)))
        output, (h_n, _) = super().forward(input, hx)
        return output, h_n


def to_lstm(model: nn.Module) -> nn.Module:
    """Every nn.RNN in `model` replaced by an `LSTMAsRNN` of the same shape; returns the model (or the new LSTM
    when `model` is itself an nn.RNN).

        >>> model = to_lstm(model)
    """
    return _swap(model, LSTMAsRNN, "to_lstm")


def to_gru(model: nn.Module) -> nn.Module:
    """Every nn.RNN in `model` replaced by an nn.GRU of the same shape; returns the model (or the new GRU when
    `model` is itself an nn.RNN).

        >>> model = to_gru(model)
    """
    return _swap(model, nn.GRU, "to_gru")


def _swap(model: nn.Module, kind: Callable[..., nn.RNNBase], remedy: str) -> nn.Module:
    sites = [(name, m) for name, m in model.named_modules(remove_duplicate=False) if isinstance(m, nn.RNN)]
    if not sites:
        raise NotApplicable(f"{remedy}: the model ({type(model).__name__}) has no nn.RNN module")
    replacements: dict[int, nn.Module] = {}  # one replacement per RNN, shared where the RNN was shared
    for name, rnn in sites:
        if id(rnn) not in replacements:
            replacements[id(rnn)] = _like(rnn, kind)
        if not name:
            return replacements[id(rnn)]
        replace_module(model, name, replacements[id(rnn)])
    return model


def _like(rnn: nn.RNN, kind: Callable[..., nn.RNNBase]) -> nn.Module:
    """A `kind` with `rnn`'s sizes and options, on its device and dtype, in its train/eval mode."""
    with torch.no_grad():
        new = kind(
            rnn.input_size, rnn.hidden_size, num_layers=rnn.num_layers, bias=rnn.bias,
            batch_first=rnn.batch_first, dropout=rnn.dropout, bidirectional=rnn.bidirectional,
        )
    return place_like(new, rnn).train(rnn.training)
