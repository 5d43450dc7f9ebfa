"""The weight blocks an init remedy draws: feed-forward groups and recurrent gates, each with its activation.

    >>> [(b.role, tuple(b.weight.shape)) for b in weight_blocks(nn.Sequential(nn.Linear(3, 4), nn.ReLU()))]
    [('layer', (4, 3))]
    >>> [b.role for b in weight_blocks(nn.GRU(3, 4))]
    ['input', 'input', 'input', 'hidden', 'hidden', 'hidden']
    >>> [tuple(b.weight.shape) for b in weight_blocks(nn.MultiheadAttention(8, 2))]   # out_proj, then q, k, v
    [(8, 8), (8, 8), (8, 8), (8, 8)]

A block's `weight` is a view shaped (units, inputs per unit, *kernel) into a parameter (see `draw`): a Linear's
weight; one group of a Conv (out/groups rows); one group of a ConvTranspose, transposed from its (in, out/groups,
*kernel) layout; one gate of a recurrent module's `weight_ih` ("input") or `weight_hh` ("hidden"), or an LSTM's
projection `weight_hr` ("input", feeding no activation); one of the query, key and value projections of an
nn.MultiheadAttention ("layer", feeding no activation: packed in `in_proj_weight`, or `q/k/v_proj_weight` when the
key and value sizes differ; its `out_proj` is a Linear). `bias` is the matching slice of the bias (for recurrent
gates, of `bias_ih` for input blocks and `bias_hh` for hidden ones), or None. Normalisation layers, embeddings and
other modules are not blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .following import following_activations
from .modules import modules_of
from .recurrent_params import RECURRENT, cells, gate, gate_activation


@dataclass(frozen=True)
class Block:
    """One block of weights to draw together, the bias of its units, and the activation its units feed."""

    weight: Tensor
    bias: Tensor | None
    activation: nn.Module | None
    role: str  # "layer" (Linear/Conv), "input" (recurrent input-to-hidden) or "hidden" (hidden-to-hidden)


def weight_blocks(model: nn.Module) -> list[Block]:
    """Every block of `model`: Linear/Conv/ConvTranspose layers in registration order, then recurrent modules, then
    the input projections of attention modules."""
    blocks = [
        block
        for name, activation in following_activations(model).items()
        for block in _layer_blocks(model.get_submodule(name), activation)
    ]
    for _, module in modules_of(model, RECURRENT):
        blocks += _recurrent_blocks(module)
    for _, module in modules_of(model, (nn.MultiheadAttention,)):
        blocks += _attention_blocks(module)
    return blocks


def _layer_blocks(layer: nn.Module, activation: nn.Module | None) -> list[Block]:
    groups = getattr(layer, "groups", 1)
    transposed = isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
    weight = layer.weight.detach()
    bias = None if layer.bias is None else layer.bias.detach()
    rows, units = weight.shape[0] // groups, (weight.shape[1] if transposed else weight.shape[0] // groups)
    blocks = []
    for g in range(groups):
        part = weight[g * rows:(g + 1) * rows]
        blocks.append(Block(
            part.transpose(0, 1) if transposed else part,
            None if bias is None else bias[g * units:(g + 1) * units],
            activation,
            "layer",
        ))
    return blocks


def _recurrent_blocks(module: nn.Module) -> list[Block]:
    blocks = []
    for cell in cells(module):
        for role, weight, bias in (("input", cell.weight_ih, cell.bias_ih), ("hidden", cell.weight_hh, cell.bias_hh)):
            blocks += [
                Block(
                    gate(weight.detach(), cell, letter),
                    None if bias is None else gate(bias.detach(), cell, letter),
                    gate_activation(module, letter),
                    role,
                )
                for letter in cell.gates
            ]
        if cell.weight_hr is not None:
            blocks.append(Block(cell.weight_hr.detach(), None, None, "input"))
    return blocks


def _attention_blocks(attention: nn.MultiheadAttention) -> list[Block]:
    """The query, key and value projections, each (embed_dim, its input size), with their slice of `in_proj_bias`."""
    size = attention.embed_dim
    bias = None if attention.in_proj_bias is None else attention.in_proj_bias.detach()
    if attention.in_proj_weight is not None:
        weights = [attention.in_proj_weight.detach()[i * size:(i + 1) * size] for i in range(3)]
    else:
        weights = [w.detach() for w in (attention.q_proj_weight, attention.k_proj_weight, attention.v_proj_weight)]
    return [Block(weight, None if bias is None else bias[i * size:(i + 1) * size], None, "layer")
            for i, weight in enumerate(weights)]
