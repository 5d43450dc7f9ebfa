"""The modules that structural remedies insert into a model: skip connections, a feature-wise batch norm, an
input standardiser.

    >>> block = Residual(nn.Sequential(nn.Linear(8, 8), nn.ReLU()), scale=0.0)   # x + 0 * f(x): the identity
    >>> gate = Highway(nn.Sequential(nn.Linear(8, 8), nn.ReLU()), features=8)      # starts close to the identity
    >>> norm = FeatureBatchNorm(8)                 # BatchNorm1d over the last dim, for (batch, ..., 8) inputs
    >>> first = Standardize(mean=torch.zeros(8), std=torch.ones(8))
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import InvalidValue

# Srivastava et al. 2015 initialise the transform-gate bias negative (-1 to -3) so that each highway block starts
# by carrying its input: sigmoid(-2) = 0.12 of the branch, 0.88 of the input.
HIGHWAY_GATE_BIAS = -2.0
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class Residual(nn.Module):
    """y = x + scale * branch(x), with `scale` a learnable scalar (ReZero, Bachlechner et al. 2020; SkipInit,
    De & Smith 2020: initialised to 0 the block starts as the identity and the gradient passes unchanged)."""

    def __init__(self, branch: nn.Module, scale: float = 0.0) -> None:
        super().__init__()
        self.branch = branch
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * self.branch(x)

    def extra_repr(self) -> str:
        return f"scale={self.scale.item():g}"


class Highway(nn.Module):
    """y = T(x) * branch(x) + (1 - T(x)) * x with T = sigmoid(gate(x)) (Srivastava et al. 2015). The gate is a
    Linear over the last dimension (`dims=0`) or a 1x1 ConvNd over the channels (`dims=N`), its bias set to
    `gate_bias` so the block starts close to the identity."""

    def __init__(self, branch: nn.Module, features: int, dims: int = 0, gate_bias: float = HIGHWAY_GATE_BIAS) -> None:
        super().__init__()
        self.branch = branch
        self.gate = nn.Linear(features, features) if dims == 0 else _CONV[dims](features, features, kernel_size=1)
        with torch.no_grad():
            self.gate.bias.fill_(gate_bias)

    def forward(self, x: Tensor) -> Tensor:
        carry = torch.sigmoid(self.gate(x))
        return carry * self.branch(x) + (1 - carry) * x


class FeatureBatchNorm(nn.BatchNorm1d):
    """nn.BatchNorm1d over the LAST dimension (the features of a Linear's output), every leading dimension counted
    as batch. On (batch, features) inputs it is exactly nn.BatchNorm1d; on (batch, time, features) it normalises
    the features, where nn.BatchNorm1d would take dimension 1 (time) for the channels."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() <= 2:
            return super().forward(x)
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class Standardize(nn.Module):
    """(x - mean) / std with per-feature buffers of the shape of one sample (every dimension but the batch's)."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1:] != self.mean.shape:
            raise InvalidValue(
                f"Standardize was fitted on samples of shape {tuple(self.mean.shape)} (batch dimension first); "
                f"got a batch of shape {tuple(x.shape)}"
            )
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"sample_shape={tuple(self.mean.shape)}"
