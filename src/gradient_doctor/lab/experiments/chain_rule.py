"""The chain-rule worked example of the seed material (0.20 × 0.5 × 0.02 = 0.002: the gradient reaching a low layer is
the product of one factor per layer above it; sigmoid′ ≤ 0.25, tanh′ ≤ 1) on a real three-layer net, read from
`gd.checkup`'s per-layer budget.

    >>> result = run_experiment("chain-rule", out=Path("lab-out"))
    >>> result.rows[0]["factors"]          # each layer's ‖δ_in‖/‖δ_out‖, output side first

Nets: three hidden Linear layers of width 32 with sigmoid (or tanh) after each, a Linear head, PyTorch's default
init, on 256 MNIST-1D examples with the cross-entropy loss. A layer's factor is its backward gain
‖∂L/∂input‖/‖∂L/∂output‖ (`LayerStats.gain`); for an activation it is ‖f′(z) ⊙ δ‖/‖δ‖ ≤ max f′. The product of
the factors from the top down to the first layer's output is the end-to-end ratio (`budget.end_to_end`); the
gradient of the first layer's weights is that ratio times the top gradient, times the input (∂L/∂W₁ = δ₁ xᵀ).
The quick version is the full one (it takes a second).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch
from torch import nn

from ...diagnose import checkup
from ..datasets import mnist1d
from ..experiment import Claim, Context, Result
from ..tasks import plain_mlp
from ..train import single_thread

NAME = "chain-rule"
SUMMARY = "the seeds' worked chain-rule example (0.20 × 0.5 × 0.02 = 0.002) on a real three-layer net"

BOUNDS = {"sigmoid": 0.25, "tanh": 1.0}  # max f'
SEEDS, WIDTH = 3, 32
EXACT = 1e-9  # |log10(product of factors) - log10(end-to-end)| below this: the chain rule's product, to rounding


def run(ctx: Context) -> Result:
    data = mnist1d()
    x, y = data.x_train[:256], data.y_train[:256]
    rows = []
    with single_thread():
        for activation in BOUNDS:
            for seed in range(ctx.seed, ctx.seed + SEEDS):
                torch.manual_seed(seed)
                model = plain_mlp(4, WIDTH, nn.Sigmoid if activation == "sigmoid" else nn.Tanh, inputs=40)
                rows.append(_measure(model, x, y, activation, seed))
                ctx.finished(f"{activation}, seed {seed}")
    return Result(rows, claims(rows), _notes())


def _measure(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, activation: str, seed: int) -> dict[str, Any]:
    m = checkup(model, x, y, nn.CrossEntropyLoss()).measurement
    between = m.layers[1:]  # above the first layer's output, in forward order
    factors = [layer.gain for layer in reversed(between)]  # the chain rule's order: from the loss down
    return {"activation": activation, "seed": seed,
            "layers": [f"{layer.name} ({layer.kind})" for layer in reversed(between)],
            "factors": factors,
            "activation_factors": [layer.gain for layer in reversed(between) if layer.role == "activation"],
            "weight_factors": [layer.gain for layer in reversed(between) if layer.role == "weights"],
            "product": math.prod(factors), "end_to_end": m.budget.end_to_end,
            "first_weight_grad": m.layers[0].grad_norm}


def claims(rows: list[dict[str, Any]]) -> list[Claim]:
    gaps = [abs(math.log10(r["product"]) - math.log10(r["end_to_end"])) for r in rows]
    example = rows[0]
    chain = Claim(
        "The gradient reaching a lower layer is the product of one factor per layer above it (0.20 × 0.5 × 0.02 = "
        "0.002)",
        f"{example['activation']}, seed {example['seed']}: "
        + " × ".join(f"{f:.3g}" for f in example["factors"])
        + f" = {example['product']:.3g}; end-to-end ratio measured by gd.checkup {example['end_to_end']:.3g}. "
        f"Largest |log10 product − log10 end-to-end| over {len(rows)} nets: {max(gaps):.1e}",
        "holds" if max(gaps) < EXACT else "does not hold", runs=SEEDS, needed=SEEDS)

    def largest(activation: str) -> float:
        return max(f for r in rows if r["activation"] == activation for f in r["activation_factors"])

    def typical(activation: str, key: str) -> float:
        return statistics.mean(f for r in rows if r["activation"] == activation for f in r[key])

    within = [a for a, bound in BOUNDS.items() if largest(a) <= bound * (1 + 1e-6)]
    bounds = Claim(
        "sigmoid′ ≤ 0.25 and tanh′ ≤ 1 bound each activation's factor",
        "; ".join(f"{a}: activation factors max {largest(a):.3g} (bound {bound:g}), mean {typical(a, 'activation_factors'):.3g}; "
                  f"weight-layer factors mean {typical(a, 'weight_factors'):.3g}" for a, bound in BOUNDS.items())
        + ". The bound holds for the activations; the weight layers' factors are not bounded by it (‖W‖ sets "
        "them), so the product's bound needs both",
        "holds" if len(within) == len(BOUNDS) else "does not hold", runs=SEEDS, needed=SEEDS)
    return [chain, bounds]


def _notes() -> list[str]:
    return [
        f"Nets: Linear(40, {WIDTH}) + 2 × Linear({WIDTH}, {WIDTH}), each followed by the activation, then "
        f"Linear({WIDTH}, 10); PyTorch's default init; {SEEDS} seeds per activation; 256 MNIST-1D training "
        "examples, cross-entropy loss; gd.checkup measures every layer's ‖δ_in‖ and ‖δ_out‖ with tensor hooks.",
        "factors: LayerStats.gain of every layer above the first Linear's output, from the loss down (the head, "
        "then activation / Linear pairs); product: their product; end_to_end: gd.checkup's budget.end_to_end.",
        "The worked example's 0.20, 0.5 and 0.02 are illustrative; the measured factors are what a real net has.",
    ]
