"""Transformer-encoder scenarios on the float sum-sign task: 16 tokens of 8 features, class 1 when feature 0
sums to > 0; a Linear embedding plus learned positions, `depth` encoder blocks, mean pooling, a Linear head.

    >>> [s.name for s in SCENARIOS if s.label == "healthy"]

Blocks are written out (attention + ReLU feed-forward) so that residuals and LayerNorm placement (post, pre,
none) can be switched off, which is what the depth-vanishing and init-exploding scenarios need.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .base import Scenario, Setup
from .sequence_common import (Data, bad_scale_check, dead_check, depth_ratio, exploding_check, healthy_check,
                              non_finite_check, plateau_check, sequence_setup, sum_sign_data, vanishing_check)

TOKENS, FEATURES, WIDTH = 16, 8, 32


class Block(nn.Module):
    """One encoder block: self-attention and a feed-forward net, each with optional residual and LayerNorm.

    >>> Block(32, norm="pre")(torch.randn(64, 16, 32)).shape
    torch.Size([64, 16, 32])
    """

    def __init__(self, width: int, norm: str | None = "post", residual: bool = True,
                 activation: type[nn.Module] = nn.ReLU, heads: int = 4):
        super().__init__()
        if norm not in ("post", "pre", None):
            raise ValueError(f"norm must be 'post', 'pre' or None; got {norm!r}")
        self.norm, self.skip = norm, 1.0 if residual else 0.0
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.feed_forward = nn.Sequential(nn.Linear(width, 2 * width), activation(), nn.Linear(2 * width, width))
        self.norm1 = nn.LayerNorm(width) if norm else nn.Identity()
        self.norm2 = nn.LayerNorm(width) if norm else nn.Identity()

    def _attend(self, x: Tensor) -> Tensor:
        return self.attention(x, x, x, need_weights=False)[0]

    def forward(self, x: Tensor) -> Tensor:
        if self.norm == "pre":
            x = self.skip * x + self._attend(self.norm1(x))
            return self.skip * x + self.feed_forward(self.norm2(x))
        x = self.norm1(self.skip * x + self._attend(x))
        return self.norm2(self.skip * x + self.feed_forward(x))


class Encoder(nn.Module):
    """Linear embedding + learned positions, `depth` blocks, (final LayerNorm for pre-norm), mean pool, head.

    >>> Encoder(2)(torch.randn(64, 16, 8)).shape
    torch.Size([64, 2])
    """

    def __init__(self, depth: int, norm: str | None = "post", residual: bool = True,
                 activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.embed = nn.Linear(FEATURES, WIDTH)
        self.position = nn.Parameter(0.02 * torch.randn(TOKENS, WIDTH))
        self.blocks = nn.Sequential(*[Block(WIDTH, norm, residual, activation) for _ in range(depth)])
        self.final = nn.LayerNorm(WIDTH) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(WIDTH, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.final(self.blocks(self.embed(x) + self.position)).mean(1))


def encoder(depth: int, gain: float = 1.0, ff_bias: float | None = None, freeze_embedding: bool = False,
            seed: int = 0, **options: object) -> Encoder:
    """A seeded Encoder; `gain` scales every matrix, `ff_bias` fills the first feed-forward bias of each block.

    >>> encoder(4, norm=None, gain=3.0)            # no LayerNorm, weights x3: the residual stream explodes
    """
    torch.manual_seed(seed)
    model = Encoder(depth, **options)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.mul_(gain)
        if ff_bias is not None:
            for block in model.blocks:
                block.feed_forward[0].bias.fill_(ff_bias)
    model.embed.requires_grad_(not freeze_embedding)
    return model


def _data(shift: float = 0.0, inf_at_step: int | None = None) -> Data:
    (x, y), (x_test, y_test) = sum_sign_data(TOKENS, FEATURES)
    x, x_test = x + shift, x_test + shift
    if inf_at_step is not None:
        x[inf_at_step * 64, 0, 0] = float("inf")     # the first sample of training batch `inf_at_step`
    return (x, y), (x_test, y_test)


def _make(depth: int, optimizer: str = "adam", lr: float = 1e-3, data: Callable[[], Data] = _data,
          autocast: torch.dtype | None = None, **options: object) -> Callable[[], Setup]:
    return lambda: sequence_setup(encoder(depth, **options), data(), optimizer, lr, autocast)


def _scenario(name: str, label: str, split: str, make: Callable[[], Setup], check: Callable[[Setup], str],
              variant: str, reference: str | None = None, steps: int = 150) -> Scenario:
    return Scenario(name, "transformer", label, split, steps, make, check, reference, variant)


_post2 = _make(2)
HEALTHY = healthy_check(depth_ratio)
REFERENCE = "tf_post2_healthy"

SCENARIOS = [
    # --- healthy controls --------------------------------------------------------------------------------------
    _scenario("tf_post2_healthy", "healthy", "dev", _post2, HEALTHY, "2 post-LN blocks, width 32, Adam 1e-3"),
    _scenario("tf_pre6_adamw_healthy", "healthy", "test", _make(6, "adamw", norm="pre"), HEALTHY,
              "hard negative: 6 pre-LN blocks, AdamW 1e-3", steps=100),
    _scenario("tf_post2_momentum_healthy", "healthy", "test", _make(2, "momentum", 0.05), HEALTHY,
              "2 post-LN blocks, SGD momentum 0.05"),
    _scenario("tf_post2_amp_healthy", "healthy", "dev", _make(2, autocast=torch.bfloat16), HEALTHY,
              "AMP control: 2 post-LN blocks, bfloat16 autocast, Adam 1e-3"),
    _scenario("tf_post2_frozen_embedding_healthy", "healthy", "test", _make(2, freeze_embedding=True), HEALTHY,
              "frozen-layer control: 2 post-LN blocks, input embedding frozen, Adam 1e-3"),
    # --- vanishing (depth) -------------------------------------------------------------------------------------
    _scenario("tf_noskip6_vanishing", "vanishing", "dev", _make(6, norm=None, residual=False),
              vanishing_check(depth_ratio), "6 blocks without residuals or LayerNorm, ReLU, Adam 1e-3", REFERENCE,
              steps=100),
    _scenario("tf_noskip8_tanh_vanishing", "vanishing", "test",
              _make(8, norm=None, residual=False, activation=nn.Tanh), vanishing_check(depth_ratio),
              "8 blocks without residuals or LayerNorm, tanh feed-forward, Adam 1e-3", REFERENCE, steps=100),
    # --- exploding ---------------------------------------------------------------------------------------------
    _scenario("tf_nonorm4_gain3_exploding", "exploding", "dev", _make(4, norm=None, gain=3.0),
              exploding_check(depth_ratio), "4 residual blocks without LayerNorm, every matrix x3, Adam 1e-3",
              REFERENCE, steps=100),
    _scenario("tf_nonorm3_gain3_adamw_exploding", "exploding", "test", _make(3, "adamw", norm=None, gain=3.0),
              exploding_check(depth_ratio), "3 residual blocks without LayerNorm, every matrix x3, AdamW 1e-3",
              REFERENCE, steps=100),
    # --- dead units --------------------------------------------------------------------------------------------
    _scenario("tf_post2_ffbias-5_dead", "dead_units", "dev", _make(2, ff_bias=-5.0), dead_check(nn.ReLU),
              "2 post-LN blocks, feed-forward ReLU bias -5, Adam 1e-3", REFERENCE),
    _scenario("tf_pre4_ffbias-5_adamw_dead", "dead_units", "test", _make(4, "adamw", norm="pre", ff_bias=-5.0),
              dead_check(nn.ReLU), "4 pre-LN blocks, feed-forward ReLU bias -5, AdamW 1e-3", REFERENCE,
              steps=100),
    # --- non-finite --------------------------------------------------------------------------------------------
    _scenario("tf_post2_sgd_lr30_nonfinite", "non_finite", "dev", _make(2, "sgd", 30.0), non_finite_check(150),
              "2 post-LN blocks, SGD lr 30", REFERENCE),
    _scenario("tf_post2_inf_input_nonfinite", "non_finite", "test", _make(2, data=lambda: _data(inf_at_step=2)),
              non_finite_check(150), "2 post-LN blocks, one +Inf input in batch 2, Adam 1e-3", REFERENCE),
    # --- plateau, bad data scale -------------------------------------------------------------------------------
    _scenario("tf_post2_lr1e-7_plateau", "plateau", "dev", _make(2, lr=1e-7), plateau_check(150, _post2),
              "2 post-LN blocks, Adam 1e-7", REFERENCE),
    _scenario("tf_post2_sgd_lr1e-4_plateau", "plateau", "test", _make(2, "sgd", 1e-4), plateau_check(150, _post2),
              "2 post-LN blocks, plain SGD at an Adam-sized lr 1e-4", REFERENCE),
    _scenario("tf_post2_offset50_bad_scale", "bad_data_scale", "test", _make(2, data=lambda: _data(shift=50.0)),
              bad_scale_check(150), "2 post-LN blocks, inputs + 50, Adam 1e-3", REFERENCE),
]
