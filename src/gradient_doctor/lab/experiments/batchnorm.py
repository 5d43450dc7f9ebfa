"""Ioffe & Szegedy 2015: batch norm trains faster, at higher learning rates, with less saturated sigmoid units;
Yang et al. 2019: without skip connections it also makes the gradient explode with depth at init.

    >>> result = run_experiment("batchnorm", quick=True, out=Path("lab-out"))
    >>> [(c.claim, c.verdict) for c in result.claims]

Training part, after the paper's MNIST experiment (3 fully connected hidden layers of 100 sigmoid units, small
random Gaussian weights, mini-batches of 60, with and without BN before each sigmoid): scikit-learn's digits,
weights N(0, 1/fan_in), zero biases, plain SGD at a sweep of learning rates, several seeds; the test accuracy
every EVERY steps gives the steps to reach TARGET. Saturated: a sigmoid output within 1 % of 0 or 1 (σ' < 0.01),
on the test set, pooled over the three sigmoid layers.

Init part, after Yang et al. 2019 (mean-field theory of batch norm: in a deep net without skips the gradient
norm grows by about sqrt(π/(π − 1)) ≈ 1.21 per ReLU layer at init, whatever the weights): Linear-BN-ReLU nets of
growing depth, `gd.checkup`'s end-to-end ratio on a batch of 256, and the per-layer factor ratio^(1/(depth − 1)).
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...diagnose import checkup
from ...probe.batch.budget import GROWTH
from ..datasets import Split, digits
from ..experiment import Claim, Context, Result
from ..train import accuracy, fit, random_batches, single_thread

NAME = "batchnorm"
SUMMARY = ("Ioffe & Szegedy 2015 (3 sigmoid layers of 100, with and without BN, a learning-rate sweep) and Yang "
           "et al. 2019 (deep BN nets without skips at init)")

TARGET = 0.90  # test accuracy on digits that counts as "trained" (a 3-layer MLP reaches ~0.95)
EVERY = 50  # steps between test-accuracy checks
YANG_FACTOR = math.sqrt(math.pi / (math.pi - 1))  # ≈ 1.21: Yang et al.'s per-layer gradient growth (ReLU, BN)
SATURATED = 0.01  # a sigmoid output within this of 0 or 1


@dataclass(frozen=True)
class Budget:
    lrs: tuple[float, ...]
    steps: int
    seeds: int
    depths: tuple[int, ...]  # of the BN-ReLU nets measured at init (Yang et al.)
    hidden: int = 3
    width: int = 100
    batch: int = 60


QUICK = Budget(lrs=(0.5, 50.0), steps=300, seeds=1, depths=(10, 30))
FULL = Budget(lrs=(0.05, 0.5, 2.0, 5.0, 10.0, 20.0, 50.0), steps=2000, seeds=3, depths=(10, 30, 60))


def sigmoid_net(norm: bool, budget: Budget, inputs: int) -> nn.Sequential:
    """`budget.hidden` Linear(-BN)-Sigmoid layers of `budget.width` and a Linear head; weights N(0, 1/fan_in).

    >>> torch.manual_seed(0); sigmoid_net(True, FULL, 64)     # Linear(64, 100), BatchNorm1d, Sigmoid, ...
    """
    layers: list[nn.Module] = []
    for n_in in [inputs] + [budget.width] * (budget.hidden - 1):
        layers += [nn.Linear(n_in, budget.width), *([nn.BatchNorm1d(budget.width)] if norm else []), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(budget.width, 10))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 1 / math.sqrt(m.in_features))
                m.bias.zero_()
    return model


def relu_net(norm: bool, depth: int, width: int, inputs: int) -> nn.Sequential:
    """`depth` Linear layers, He init, Linear(-BN)-ReLU between them, no skips: Yang et al.'s setting.

    >>> torch.manual_seed(0); relu_net(True, 30, 128, 64)
    """
    layers: list[nn.Module] = []
    for n_in in [inputs] + [width] * (depth - 2):
        layers += [nn.Linear(n_in, width), *([nn.BatchNorm1d(width)] if norm else []), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def saturated_fraction(model: nn.Sequential, x: Tensor) -> float:
    """Fraction of the sigmoid outputs within SATURATED of 0 or 1 on `x` (eval mode), pooled over the layers."""
    training = model.training
    model.eval()
    saturated, total, h = 0, 0, x
    with torch.no_grad():
        for module in model:
            h = module(h)
            if isinstance(module, nn.Sigmoid):
                saturated += int(((h < SATURATED) | (h > 1 - SATURATED)).sum())
                total += h.numel()
    model.train(training)
    return saturated / total


def run(ctx: Context) -> Result:
    budget = QUICK if ctx.quick else FULL
    data = digits()
    rows = []
    with single_thread():
        for norm, lr, seed in itertools.product((False, True), budget.lrs, range(ctx.seed, ctx.seed + budget.seeds)):
            rows.append(_train(norm, lr, seed, data, budget))
            ctx.finished(f"sigmoid {'with' if norm else 'without'} BN, lr {lr}, seed {seed}")
        x = data.x_train[:256]
        for norm, depth, seed in itertools.product((False, True), budget.depths,
                                                   range(ctx.seed, ctx.seed + budget.seeds)):
            torch.manual_seed(seed)
            model = relu_net(norm, depth, 128, x.shape[1])
            ratio = checkup(model, x, data.y_train[:256], nn.CrossEntropyLoss()).measurement.budget.end_to_end
            rows.append({"part": "init", "bn": norm, "depth": depth, "seed": seed, "ratio_at_init": ratio,
                         "per_layer": ratio ** (1 / (depth - 1))})
            ctx.finished(f"ReLU {'with' if norm else 'without'} BN at init, depth {depth}, seed {seed}")
    return Result(rows, claims(rows, budget), _notes(budget))


def _train(norm: bool, lr: float, seed: int, data: Split, budget: Budget) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = sigmoid_net(norm, budget, data.x_train.shape[1])
    saturated_init = saturated_fraction(model, data.x_test)
    curve: list[float] = []
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    fitted = fit(model, optimizer, random_batches(data, budget.batch, seed), nn.functional.cross_entropy,
                 budget.steps, every=EVERY, stop_on_nonfinite=True,
                 monitor=lambda step: curve.append(accuracy(model, data.x_test, data.y_test)))
    reached = next((k * EVERY for k, acc in enumerate(curve) if acc >= TARGET), None)
    return {"part": "train", "bn": norm, "lr": lr, "seed": seed, "steps_to_target": reached,
            "final_accuracy": curve[-1] if not fitted.diverged else 0.0, "diverged": fitted.diverged,
            "saturated_init": saturated_init,
            "saturated_final": math.nan if fitted.diverged else saturated_fraction(model, data.x_test)}


def claims(rows: list[dict[str, Any]], budget: Budget) -> list[Claim]:
    train = [r for r in rows if r["part"] == "train"]
    init = [r for r in rows if r["part"] == "init"]

    def own(bn: bool, lr: float) -> list[dict[str, Any]]:
        return [r for r in train if r["bn"] == bn and r["lr"] == lr]

    def median_steps(bn: bool, lr: float) -> float:
        return statistics.median(math.inf if r["steps_to_target"] is None else r["steps_to_target"]
                                 for r in own(bn, lr))

    def label(bn: bool) -> str:
        return "BN" if bn else "plain"

    speed = "; ".join(f"lr {lr:g}: plain {median_steps(False, lr):g}, BN {median_steps(True, lr):g}"
                      for lr in budget.lrs)
    contested = [lr for lr in budget.lrs if min(median_steps(False, lr), median_steps(True, lr)) < math.inf]
    faster = [lr for lr in contested if median_steps(True, lr) < median_steps(False, lr)]
    faster_verdict = _share(len(faster), len(contested))
    faster_claim = Claim(
        "Batch norm trains faster: fewer steps to the same accuracy (Ioffe & Szegedy 2015, 3 sigmoid layers of "
        "100, mini-batches of 60)",
        f"median steps to {TARGET:.0%} test accuracy (inf: not within {budget.steps}) — {speed}; BN faster at "
        f"lr {faster or 'none'} of those reached by either {contested}",
        faster_verdict, runs=budget.seeds, needed=FULL.seeds)

    def highest(bn: bool) -> float | None:
        ok = [lr for lr in budget.lrs if all(r["steps_to_target"] is not None for r in own(bn, lr))]
        return max(ok) if ok else None

    top = {bn: highest(bn) for bn in (False, True)}
    higher = top[True] is not None and (top[False] is None or top[True] > top[False])
    lr_claim = Claim(
        "Batch norm allows higher learning rates (Ioffe & Szegedy 2015)",
        f"highest lr of {list(budget.lrs)} at which every seed reaches {TARGET:.0%}: plain {top[False]}, BN "
        f"{top[True]}; diverged runs: " + ", ".join(
            f"{label(bn)} lr {lr:g} {sum(r['diverged'] for r in own(bn, lr))}/{len(own(bn, lr))}"
            for bn in (False, True) for lr in budget.lrs),
        "holds" if higher else "does not hold", runs=budget.seeds, needed=FULL.seeds)

    def saturation(bn: bool, lr: float) -> float:
        return statistics.mean(r["saturated_final"] for r in own(bn, lr))

    less = [lr for lr in budget.lrs if saturation(True, lr) < saturation(False, lr)]
    saturation_claim = Claim(
        "Batch norm keeps sigmoid units out of saturation (Ioffe & Szegedy 2015)",
        "saturated fraction of the sigmoid outputs after training (σ within 0.01 of 0 or 1; at init: plain "
        f"{statistics.mean(r['saturated_init'] for r in train if not r['bn']):.3f}, BN "
        f"{statistics.mean(r['saturated_init'] for r in train if r['bn']):.3f}) — "
        + "; ".join(f"lr {lr:g}: plain {saturation(False, lr):.3f}, BN {saturation(True, lr):.3f}"
                    for lr in budget.lrs) + f"; BN lower at lr {less or 'none'}",
        _share(len(less), len(budget.lrs)), runs=budget.seeds, needed=FULL.seeds)

    deep = max(budget.depths)
    factors = {(bn, d): statistics.mean(r["per_layer"] for r in init if (r["bn"], r["depth"]) == (bn, d))
               for bn in (False, True) for d in budget.depths}
    explodes = [r for r in init if r["bn"] and r["depth"] == deep and not r["ratio_at_init"] <= GROWTH]
    n_deep = sum(1 for r in init if r["bn"] and r["depth"] == deep)
    yang = Claim(
        "Condition (Yang et al. 2019): without skips, batch norm makes the gradient explode with depth at init, "
        f"about ×{YANG_FACTOR:.2f} per layer",
        "mean per-layer factor of the end-to-end gradient ratio at init, ReLU width 128, batch 256 — "
        + "; ".join(f"depth {d}: BN ×{factors[True, d]:.3f}, plain He ×{factors[False, d]:.3f}"
                    for d in budget.depths)
        + f"; BN ratio > e^3 at depth {deep} in {len(explodes)}/{n_deep} seeds (ratios "
        + ", ".join(f"{r['ratio_at_init']:.3g}" for r in init if r["bn"] and r["depth"] == deep) + ")",
        "holds" if len(explodes) == n_deep else "holds with conditions" if explodes else "does not hold",
        runs=budget.seeds, needed=FULL.seeds)

    benefit = [name for name, good in (("faster", faster_verdict != "does not hold"), ("higher lr", higher))
               if good]
    overall = Claim(
        "Batch norm stabilises gradient flow (the seeds' wording)",
        f"training benefit (the two claims above, faster and higher lr, judged from the numbers): {benefit or 'none'}"
        "; at init without "
        f"skips the gradient grows ×{factors[True, deep]:.2f} per layer (ratio > e^3 at depth {deep} in "
        f"{len(explodes)}/{n_deep} seeds)",
        "does not hold" if not benefit else "holds with conditions" if explodes else "holds",
        runs=budget.seeds, needed=FULL.seeds)
    return [faster_claim, lr_claim, saturation_claim, yang, overall]


def _share(good: int, total: int) -> str:
    return "holds" if total and good == total else "holds with conditions" if good else "does not hold"


def _notes(budget: Budget) -> list[str]:
    return [
        "Dataset: scikit-learn's digits (1438 train / 359 test, 64 standardised features); the paper used MNIST.",
        f"Training: {budget.hidden} hidden layers of {budget.width} sigmoid units (BN before each sigmoid in the BN "
        f"net), weights N(0, 1/fan_in), zero biases, plain SGD (no momentum) at lr {list(budget.lrs)}, "
        f"mini-batches of {budget.batch} drawn with replacement, {budget.steps} steps, {budget.seeds} seed(s); "
        f"test accuracy every {EVERY} steps; a non-finite loss stops the run (diverged, accuracy 0).",
        f"Init: Linear-ReLU nets of {list(budget.depths)} Linear layers, width 128, He init, with and without BN "
        "after every hidden Linear, no skips; gd.checkup's end-to-end ratio ‖δ at the first layer's output‖ / "
        "‖δ at the logits‖ on 256 training examples (train mode: batch statistics, as in Yang et al.).",
        "Deviation from the papers: digits instead of MNIST / ImageNet, thousands of steps instead of 50,000, "
        "finite width 128 where Yang et al.'s factor is the infinite-width limit.",
    ]
