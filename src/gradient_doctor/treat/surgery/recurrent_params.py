"""The parameters of recurrent modules, one layer and direction at a time, and their gate slices.

    >>> [cell.suffix for cell in cells(nn.LSTM(4, 8, num_layers=2, bidirectional=True))]
    ['_l0', '_l0_reverse', '_l1', '_l1_reverse']
    >>> gate(cell.bias_ih, cell, "f")      # the forget-gate rows of bias_ih (PyTorch order i, f, g, o)

PyTorch stacks the gates along dim 0 of `weight_ih`, `weight_hh`, `bias_ih` and `bias_hh`, each `hidden_size`
rows: LSTM i, f, g, o; GRU r, z, n; vanilla RNN a single block. The cells (nn.LSTMCell, ...) have one "layer"
with no suffix.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

RECURRENT = (nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)

_GATES: tuple[tuple[tuple[type, ...], str], ...] = (
    ((nn.LSTM, nn.LSTMCell), "ifgo"),
    ((nn.GRU, nn.GRUCell), "rzn"),
    ((nn.RNN, nn.RNNCell), "h"),
)


@dataclass(frozen=True)
class Cell:
    """One layer and direction of a recurrent module: its parameters (None where absent) and gate letters."""

    suffix: str  # "_l1_reverse"; "" for nn.*Cell
    gates: str  # "ifgo" (LSTM), "rzn" (GRU), "h" (vanilla RNN)
    hidden_size: int
    weight_ih: nn.Parameter
    weight_hh: nn.Parameter
    bias_ih: nn.Parameter | None
    bias_hh: nn.Parameter | None
    weight_hr: nn.Parameter | None  # LSTM projection (proj_size > 0)


def cells(module: nn.Module) -> list[Cell]:
    """Every layer and direction of an nn.LSTM/GRU/RNN (or the one of an nn.*Cell), in PyTorch's order."""
    gates = next(letters for kinds, letters in _GATES if isinstance(module, kinds))
    if isinstance(module, nn.RNNCellBase):
        suffixes = [""]
    else:
        directions = ["", "_reverse"] if module.bidirectional else [""]
        suffixes = [f"_l{layer}{direction}" for layer in range(module.num_layers) for direction in directions]
    return [
        Cell(
            suffix, gates, module.hidden_size,
            getattr(module, f"weight_ih{suffix}"), getattr(module, f"weight_hh{suffix}"),
            getattr(module, f"bias_ih{suffix}", None), getattr(module, f"bias_hh{suffix}", None),
            getattr(module, f"weight_hr{suffix}", None),
        )
        for suffix in suffixes
    ]


def gate(tensor: Tensor, cell: Cell, letter: str) -> Tensor:
    """The rows of `tensor` (a weight or bias of `cell`) that belong to gate `letter` (a view)."""
    index = cell.gates.index(letter)
    return tensor[index * cell.hidden_size:(index + 1) * cell.hidden_size]


def gate_activation(module: nn.Module, letter: str) -> nn.Module:
    """The nonlinearity a gate's pre-activation feeds: sigmoid for LSTM i, f, o and GRU r, z; tanh for LSTM g and
    GRU n; the vanilla RNN's own (tanh or relu)."""
    if letter == "h":
        return nn.ReLU() if module.nonlinearity == "relu" else nn.Tanh()
    return nn.Tanh() if letter in "gn" else nn.Sigmoid()
