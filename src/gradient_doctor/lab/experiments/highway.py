"""Srivastava et al. 2015 ("Training very deep networks"): highway networks train at depths where plain nets of
the same depth and about the same number of parameters degrade.

    >>> result = run_experiment("highway", quick=True, out=Path("lab-out"))
    >>> result.claims[0].verdict

The paper's MNIST experiment: thin nets of 10, 20, 50 and 100 layers, the first a plain layer, the others
highway layers of 50 units (plain nets: 71 units, about the same parameters per layer), SGD with momentum, the
transform gate's bias initialised negative. Here scikit-learn's 8×8 digits (the MNIST stand-in that ships with
scikit-learn), 10/20/50 layers, a small learning-rate grid per kind and depth (the paper ran a random search per
net; each configuration is judged at its best learning rate: lowest mean training loss over the seeds), several
seeds. A highway layer: y = ReLU(W_H x)·T(x) + x·(1 − T(x)), T(x) = σ(W_T x − 3). The plain nets have He init
(the best case for a plain ReLU net). "Degrades" as in the residual experiment: the deepest net's training loss
is above the shallowest's by more than DEGRADES nats. Why gate bias −3: with C = 1 − T and a zero-mean H, each
layer keeps about C² + T² of the signal's variance (≈ 0.79 at −2), so a 50-layer stack starts with its signal
nearly gone; in exploratory single-seed runs (not in the table) 50-layer highway nets with bias −1 or −2 and ReLU
or tanh H stayed at ln 10 for 600 steps at lr 0.01 and 0.03; at −3 the loss at least moves.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..datasets import digits
from ..experiment import Claim, Context, Result
from ..tasks import plain_mlp
from ..train import single_thread, train_classifier
from ._blocks import HIGHWAY_GATE_BIAS, block_net

NAME = "highway"
SUMMARY = "Srivastava et al. 2015: highway vs plain nets of 10-50 layers on the digits data"

KINDS = ("plain", "highway")
WIDTH = {"plain": 71, "highway": 50}  # the paper's widths: about the same parameters per layer
DEGRADES = 0.05


@dataclass(frozen=True)
class Budget:
    layers: tuple[int, ...]
    steps: int
    seeds: int
    lrs: tuple[float, ...] = (0.003, 0.01)  # SGD, momentum 0.9
    batch: int = 64


QUICK = Budget(layers=(5, 20), steps=150, seeds=1, lrs=(0.01,))
FULL = Budget(layers=(10, 20, 50), steps=600, seeds=3)


def build(kind: str, layers: int, inputs: int) -> nn.Sequential:
    """`layers` hidden layers (the first a plain Linear-ReLU), then the head; weights from the global RNG.

    >>> torch.manual_seed(0); build("highway", 50, 64)     # Linear(64, 50), ReLU, 49 highway layers, Linear(50, 10)
    """
    if kind == "highway":
        return block_net("highway", layers - 1, WIDTH[kind], inputs)
    return plain_mlp(layers + 1, WIDTH[kind], nn.ReLU, gain=math.sqrt(2), inputs=inputs)


def run(ctx: Context) -> Result:
    budget = QUICK if ctx.quick else FULL
    data = digits()
    rows = []
    with single_thread():
        for layers in budget.layers:
            for kind, lr, seed in itertools.product(KINDS, budget.lrs, range(ctx.seed, ctx.seed + budget.seeds)):
                torch.manual_seed(seed)
                model = build(kind, layers, data.x_train.shape[1])
                trained = train_classifier(model, data, budget.steps, lr, budget.batch, "sgd", seed)
                rows.append({"kind": kind, "layers": layers, "lr": lr, "seed": seed,
                             "parameters": sum(p.numel() for p in model.parameters()), **trained})
                ctx.finished(f"{kind}, {layers} layers, lr {lr}, seed {seed}: train loss {trained['train_loss']:.3f}")
    return Result(rows, claims(rows, budget), _notes(budget))


def claims(rows: list[dict[str, Any]], budget: Budget) -> list[Claim]:
    deep, shallow = max(budget.layers), min(budget.layers)
    seeds = sorted({r["seed"] for r in rows})
    best = {(k, n): best_lr(rows, k, n) for k in KINDS for n in budget.layers}

    def loss(kind: str, layers: int, seed: int) -> float:
        (row,) = [r for r in rows if (r["kind"], r["layers"], r["lr"], r["seed"]) ==
                  (kind, layers, best[kind, layers], seed)]
        return math.inf if row["diverged"] else row["train_loss"]

    degraded = {k: sum(loss(k, deep, s) - loss(k, shallow, s) > DEGRADES for s in seeds) for k in KINDS}
    beats = sum(loss("highway", deep, s) < loss("plain", deep, s) for s in seeds)
    accuracy = {(k, n): statistics.mean(r["test_accuracy"] for r in rows
                                        if (r["kind"], r["layers"], r["lr"]) == (k, n, best[k, n]))
                for k in KINDS for n in budget.layers}
    measured = ("at the best lr of each, mean training loss (test accuracy, lr) by layers — " + "; ".join(
        f"{k}: " + ", ".join(f"{n}: {statistics.mean(loss(k, n, s) for s in seeds):.3f} ({accuracy[k, n]:.0%}, "
                             f"lr {best[k, n]:g})"
                             for n in budget.layers) for k in KINDS)
        + f". Degraded from {shallow} to {deep} layers (> +{DEGRADES} nats): highway in {degraded['highway']}/"
        f"{len(seeds)} seeds, plain in {degraded['plain']}/{len(seeds)}; highway below plain at {deep} layers in "
        f"{beats}/{len(seeds)} seeds")
    # holds: no degradation and below plain in every seed; with conditions: below plain in every seed, degrading
    verdict = ("does not hold" if beats < len(seeds) else "holds" if degraded["highway"] == 0
               else "holds with conditions")
    return [Claim("Highway networks let deep nets train (Srivastava et al. 2015)", measured, verdict,
                  runs=budget.seeds, needed=FULL.seeds)]


def best_lr(rows: list[dict[str, Any]], kind: str, layers: int) -> float:
    """The learning rate whose runs of `kind` at `layers` reach the lowest mean training loss (diverged: inf)."""
    lrs = sorted({r["lr"] for r in rows})

    def mean_loss(lr: float) -> float:
        own = [r for r in rows if (r["kind"], r["layers"], r["lr"]) == (kind, layers, lr)]
        return statistics.mean(math.inf if r["diverged"] else r["train_loss"] for r in own)

    return min(lrs, key=mean_loss)


def _notes(budget: Budget) -> list[str]:
    return [
        "Dataset: scikit-learn's digits, 1438 train / 359 test, 64 standardised features (no download).",
        f"Layers {list(budget.layers)} (hidden layers; the head adds one Linear), highway width {WIDTH['highway']}, "
        f"plain width {WIDTH['plain']} (the paper's); transform gate bias {HIGHWAY_GATE_BIAS}; {budget.steps} "
        f"steps of SGD (momentum 0.9, lr in {list(budget.lrs)}, batch {budget.batch}) for both kinds, {budget.seeds} "
        "seed(s) per configuration.",
        "Plain nets: Linear-ReLU with He init (N(0, 2/fan_in)), zero biases; highway H with He init, T with "
        "N(0, 1/fan_in).",
        "Deviation from the paper: digits instead of MNIST, a two-point learning-rate grid instead of a random "
        "search per net, a few hundred steps instead of epochs, depths up to 50 instead of 100.",
    ]
