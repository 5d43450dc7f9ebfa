"""Drawing one weight block in place: variance-scaled, orthogonal, or delta-orthogonal.

    >>> variance_(linear.weight, std=(2 / 1000) ** 0.5, distribution="normal")    # He for a Linear(1000, .)
    >>> orthogonal_(linear.weight, gain=1.0)                                      # W W^T = I (square)
    >>> delta_orthogonal_(conv.weight, gain=1.0)     # zero but an orthogonal matrix at the kernel centre

A block is a view shaped (units, inputs per unit, *kernel): the rows are the units the block feeds, so
fan_in = inputs * kernel size and fan_out = units * kernel size. Orthogonal blocks are drawn as in
`torch.nn.init.orthogonal_` (QR of a Gaussian matrix, Saxe et al. 2014) and then scaled so that each row has unit
norm on average: a block with more rows than row length (which can only have orthonormal columns) is multiplied by
sqrt(rows / row length). Each unit's pre-activation variance is then gain^2 * |x|^2 / fan_in, as for a Gaussian
fan-in init with that gain, and the singular values stay all equal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

DISTRIBUTIONS = ("normal", "uniform")


def fans(block: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a block shaped (units, inputs per unit, *kernel)."""
    receptive = math.prod(block.shape[2:])
    return block.shape[1] * receptive, block.shape[0] * receptive


def variance_(block: Tensor, std: float, distribution: str) -> None:
    """Fill `block` with i.i.d. zero-mean values of standard deviation `std`: N(0, std^2) or U(-a, a) with
    a = sqrt(3) * std."""
    if distribution == "normal":
        block.normal_(0.0, std)
    else:
        bound = math.sqrt(3.0) * std
        block.uniform_(-bound, bound)


def orthogonal_(block: Tensor, gain: float) -> None:
    """Fill `block` with gain * a random orthogonal matrix over (units, the rest flattened), rows of unit norm
    on average (see the module docstring)."""
    rows = block.shape[0]
    block.copy_(_orthogonal(block, rows, block.numel() // rows, gain).reshape(block.shape))


def delta_orthogonal_(block: Tensor, gain: float) -> None:
    """Delta-orthogonal kernel (Xiao et al. 2018, Algorithm 2): zero everywhere but the spatial centre
    (index k // 2 on each axis), which holds gain * an orthogonal (units, inputs) matrix."""
    centre = (slice(None), slice(None), *(size // 2 for size in block.shape[2:]))
    block.zero_()
    block[centre] = _orthogonal(block, block.shape[0], block.shape[1], gain)


def _orthogonal(like: Tensor, rows: int, cols: int, gain: float) -> Tensor:
    # QR has no half-precision kernels: draw in float32 (float64 for float64 blocks) and let copy_ cast.
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    matrix = nn.init.orthogonal_(torch.empty(rows, cols, dtype=dtype, device=like.device))
    return matrix * (gain * math.sqrt(max(1.0, rows / cols)))
