"""The deep MLPs of the residual and highway experiments, built as the papers built their blocks (on vectors).

    >>> model = block_net("v2", blocks=10, width=64, inputs=40)     # He et al. 2016b pre-activation blocks
    >>> linear_depth(model)                                          # stem + 2 per block + head
    22

Kinds (`KINDS`), each a stem Linear(inputs, width), `blocks` blocks of two Linear(width, width), a head:
- "plain": Linear-ReLU pairs, no skip, no norm (the stem and head as for the others);
- "plain_bn": He et al. 2016a's plain baseline, Linear-BN-ReLU, no skip;
- "v1": He et al. 2016a, y = ReLU(x + BN(W2 ReLU(BN(W1 x)))), the stem Linear-BN-ReLU;
- "v2": He et al. 2016b (pre-activation), y = x + W2 ReLU(BN(W1 ReLU(BN(x)))), a final BN-ReLU before the head;
- "skipinit": De & Smith 2020, y = x + α W2 ReLU(W1 x) with a learnable scalar α = 0 at init, no norm;
- "unnormalised": y = x + W2 ReLU(W1 x), no norm and no scale: with He init on both Linear layers the branch
  adds about twice the input's variance, so the variance about triples per block;
- "highway": Srivastava et al. 2015, y = H(x)·T(x) + x·(1 − T(x)), H = ReLU(W_H x), T = σ(W_T x + b_T) with
  the gate bias b_T = HIGHWAY_GATE_BIAS (one highway layer counts as one "block" of two Linear layers).
Every Linear before a ReLU has He init (N(0, 2/fan_in)), the others N(0, 1/fan_in); biases zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ...errors import InvalidValue

KINDS = ("plain", "plain_bn", "v1", "v2", "skipinit", "unnormalised", "highway")
HIGHWAY_GATE_BIAS = -3.0  # Srivastava et al. 2015 initialise the transform gate's bias negative (-1 to -4 by depth)


def _linear(n_in: int, n_out: int, gain: float = math.sqrt(2)) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.normal_(0, gain / math.sqrt(n_in))
        layer.bias.zero_()
    return layer


class Block(nn.Module):
    """One block of `kind` on `width` features (see the module docstring)."""

    def __init__(self, kind: str, width: int):
        super().__init__()
        self.kind = kind
        self.first, self.second = _linear(width, width), _linear(width, width)
        if kind in ("plain_bn", "v1", "v2"):
            self.norm1, self.norm2 = nn.BatchNorm1d(width), nn.BatchNorm1d(width)
        if kind == "skipinit":
            self.alpha = nn.Parameter(torch.zeros(()))
        if kind == "highway":  # `second` is the transform gate's Linear
            with torch.no_grad():
                self.second.weight.normal_(0, 1 / math.sqrt(width))
                self.second.bias.fill_(HIGHWAY_GATE_BIAS)

    def forward(self, x: Tensor) -> Tensor:
        kind, relu = self.kind, torch.relu
        if kind == "plain":
            return relu(self.second(relu(self.first(x))))
        if kind == "plain_bn":
            return relu(self.norm2(self.second(relu(self.norm1(self.first(x))))))
        if kind == "v1":
            return relu(x + self.norm2(self.second(relu(self.norm1(self.first(x))))))
        if kind == "v2":
            return x + self.second(relu(self.norm2(self.first(relu(self.norm1(x))))))
        if kind == "highway":
            gate = torch.sigmoid(self.second(x))
            return relu(self.first(x)) * gate + x * (1 - gate)
        branch = self.second(relu(self.first(x)))
        return x + (self.alpha * branch if kind == "skipinit" else branch)


def block_net(kind: str, blocks: int, width: int, inputs: int, outputs: int = 10) -> nn.Sequential:
    """Stem, `blocks` blocks of `kind`, head; weights from torch's global RNG (seed it first).

    >>> torch.manual_seed(0); block_net("v1", 25, 64, 40)     # 52 Linear layers, 50 of them in blocks
    """
    if kind not in KINDS:
        raise InvalidValue(f"kind must be one of {list(KINDS)}; got {kind!r}")
    if blocks < 1 or width < 1:
        raise InvalidValue(f"blocks and width must be >= 1; got blocks={blocks}, width={width}")
    stem: list[nn.Module] = [_linear(inputs, width)]
    if kind in ("plain_bn", "v1"):
        stem.append(nn.BatchNorm1d(width))
    if kind != "v2":
        stem.append(nn.ReLU())
    tail: list[nn.Module] = [nn.BatchNorm1d(width), nn.ReLU()] if kind == "v2" else []
    return nn.Sequential(*stem, *(Block(kind, width) for _ in range(blocks)), *tail,
                         _linear(width, outputs, gain=1.0))


def linear_depth(model: nn.Module) -> int:
    """The number of nn.Linear layers: a net's depth as the papers count it (a highway layer's gate included)."""
    return sum(isinstance(m, nn.Linear) for m in model.modules())
