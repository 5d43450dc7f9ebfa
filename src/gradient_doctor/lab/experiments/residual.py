"""He et al. 2016: residual blocks (v1 with batch norm in the branch, v2 pre-activation) and SkipInit keep deep
nets trainable where plain nets of the same depth degrade; the unnormalised x + f(x) stack explodes.

    >>> result = run_experiment("residual", quick=True, out=Path("lab-out"))
    >>> [(c.claim, c.verdict) for c in result.claims]

The papers' claim (He et al. 2016a, "Deep residual learning"): a deeper plain net reaches a *higher training*
error than a shallower one (degradation), a deeper residual net a lower one. Here MLP versions of the blocks
(lab/experiments/_blocks.py) on MNIST-1D, SGD with momentum 0.9 at lr 0.1 and batch 128 (the paper's optimiser
and learning rate; no weight decay, no schedule), several seeds. "Degrades" = the deepest net's training loss
(whole training set, end of the budget) is above the shallowest net's by more than DEGRADES nats.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...diagnose import checkup
from ...probe.batch.budget import GROWTH
from ..datasets import mnist1d
from ..experiment import Claim, Context, Result
from ..train import single_thread, train_classifier
from ._blocks import block_net, linear_depth

NAME = "residual"
SUMMARY = ("He et al. 2016 v1/v2 residual blocks and SkipInit vs plain nets of the same depth; the unnormalised "
           "x + f(x) stack")

KINDS = ("plain", "plain_bn", "v1", "v2", "skipinit", "unnormalised")
RESIDUAL = ("v1", "v2", "skipinit")
DEGRADES = 0.05  # nats of training loss the deepest net may lose to the shallowest before it counts as degraded


@dataclass(frozen=True)
class Budget:
    blocks: tuple[int, ...]
    width: int
    steps: int
    seeds: int
    batch: int = 128
    lr: float = 0.1


QUICK = Budget(blocks=(2, 8), width=32, steps=150, seeds=1)
FULL = Budget(blocks=(2, 8, 24), width=64, steps=600, seeds=3)


def run(ctx: Context) -> Result:
    budget = QUICK if ctx.quick else FULL
    data = mnist1d()
    x, y = data.x_train[:256], data.y_train[:256]
    rows = []
    with single_thread():
        for blocks in budget.blocks:
            for kind in KINDS:
                for seed in range(ctx.seed, ctx.seed + budget.seeds):
                    torch.manual_seed(seed)
                    model = block_net(kind, blocks, budget.width, data.x_train.shape[1])
                    ratio = checkup(model, x, y, nn.CrossEntropyLoss()).measurement.budget.end_to_end
                    trained = train_classifier(model, data, budget.steps, budget.lr, budget.batch, "sgd", seed)
                    rows.append({"kind": kind, "blocks": blocks, "linear_layers": linear_depth(model), "seed": seed,
                                 "ratio_at_init": ratio, **trained})
                    ctx.finished(f"{kind}, {blocks} blocks, seed {seed}: train loss {trained['train_loss']:.3f}")
    return Result(rows, claims(rows, budget), _notes(budget))


def degradation(rows: list[dict[str, Any]], kind: str, budget: Budget) -> list[float]:
    """Per seed: training loss of the deepest `kind` net minus the shallowest's (inf when the deep one diverged)."""
    def loss(blocks: int, seed: int) -> float:
        (row,) = [r for r in rows if (r["kind"], r["blocks"], r["seed"]) == (kind, blocks, seed)]
        return float("inf") if row["diverged"] else row["train_loss"]

    seeds = sorted({r["seed"] for r in rows})
    return [loss(max(budget.blocks), s) - loss(min(budget.blocks), s) for s in seeds]


def claims(rows: list[dict[str, Any]], budget: Budget) -> list[Claim]:
    deep, shallow = max(budget.blocks), min(budget.blocks)

    def mean_loss(kind: str, blocks: int) -> float:
        return statistics.mean(float("inf") if r["diverged"] else r["train_loss"] for r in rows
                               if r["kind"] == kind and r["blocks"] == blocks)

    layers = {b: next(r["linear_layers"] for r in rows if r["blocks"] == b) for b in budget.blocks}
    described = "; ".join(f"{kind}: {mean_loss(kind, shallow):.3f} → {mean_loss(kind, deep):.3f} "
                          f"(degraded in {sum(d > DEGRADES for d in degradation(rows, kind, budget))}/"
                          f"{budget.seeds} seeds)" for kind in KINDS)
    trains = [k for k in RESIDUAL if all(d <= DEGRADES for d in degradation(rows, k, budget))
              and mean_loss(k, deep) < mean_loss("plain_bn", deep)]
    plain_degrades = all(d > DEGRADES for d in degradation(rows, "plain_bn", budget))
    verdict = ("does not hold" if not trains else "holds" if len(trains) == len(RESIDUAL) and plain_degrades
               else "holds with conditions")
    residual = Claim(
        "Residual connections let deep nets train: deeper plain nets degrade, deeper residual nets do not "
        "(He et al. 2016, v1 and v2 blocks with BN in the branch; SkipInit, De & Smith 2020)",
        f"mean training loss, {layers[shallow]} → {layers[deep]} Linear layers — {described}. Residual kinds "
        f"without degradation (≤ +{DEGRADES} nats in every seed) and below plain_bn at depth {layers[deep]}: "
        f"{trains or 'none'}; plain_bn degrades in every seed: {'yes' if plain_degrades else 'no'}",
        verdict, runs=budget.seeds, needed=FULL.seeds)
    naive = [r for r in rows if r["kind"] == "unnormalised" and r["blocks"] == deep]
    exploded = [r for r in naive if not r["ratio_at_init"] <= GROWTH]
    strawman = Claim(
        "Unnormalised x + f(x) explodes (no BN, no branch scale: the branch adds its own variance every block, about ×3 here)",
        f"{layers[deep]} Linear layers: end-to-end gradient ratio at init "
        + ", ".join(f"{r['ratio_at_init']:.3g}" for r in naive)
        + f" (> e^3 in {len(exploded)}/{len(naive)} seeds; v1 "
        + ", ".join(f"{r['ratio_at_init']:.3g}" for r in rows if r["kind"] == "v1" and r["blocks"] == deep)
        + f"); diverged in training {sum(r['diverged'] for r in naive)}/{len(naive)}, mean test accuracy "
        f"{statistics.mean(r['test_accuracy'] for r in naive):.0%}",
        "holds" if len(exploded) == len(naive) else "holds with conditions" if exploded else "does not hold",
        runs=budget.seeds, needed=FULL.seeds)
    return [residual, strawman]


def _notes(budget: Budget) -> list[str]:
    return [
        "Dataset: MNIST-1D (4000 train / 1000 test), generated locally.",
        f"Blocks {list(budget.blocks)} of two Linear({budget.width}, {budget.width}) each, plus a stem and a head "
        f"(Linear layers: 2 × blocks + 2); {budget.seeds} seed(s) per configuration; {budget.steps} steps of SGD, "
        f"momentum 0.9, lr {budget.lr}, batch {budget.batch} (He et al. 2016's optimiser and lr; no weight decay, "
        "no schedule, no warm-up); the same lr for every kind.",
        "Blocks: plain (Linear-ReLU, no norm), plain_bn (He et al. 2016a's plain baseline, Linear-BN-ReLU), "
        "v1 = ReLU(x + BN(W2 ReLU(BN(W1 x)))) (He et al. 2016a), v2 = x + W2 ReLU(BN(W1 ReLU(BN x))) (He et al. "
        "2016b, pre-activation), skipinit = x + α·W2 ReLU(W1 x), α = 0 learnable (De & Smith 2020), unnormalised "
        "= x + W2 ReLU(W1 x) (the strawman the previous lab tested). He init, zero biases.",
        "train_loss: cross-entropy over the whole training set in eval mode after the budget; ratio_at_init: "
        "gd.checkup's ‖δ at the stem's output‖ / ‖δ at the logits‖ on 256 training examples (train mode).",
        f"Degraded: deepest net's training loss > shallowest's + {DEGRADES} nats (a diverged run counts as "
        "degraded). Deviation from the papers: MLP blocks on MNIST-1D, a few hundred steps, not CIFAR/ImageNet "
        "convnets trained for epochs.",
    ]
