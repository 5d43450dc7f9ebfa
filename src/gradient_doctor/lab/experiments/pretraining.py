"""Greedy layer-wise pre-training (the seeds' "multi-level hierarchy") vs none, for a deep sigmoid MLP on MNIST-1D.

    >>> result = run_experiment("pretraining", quick=True, out=Path("lab-out"))
    >>> result.claims[0].verdict

Three arms per seed and fine-tuning optimiser, all from the same PyTorch-default initial weights and the same
batches: `none` (supervised training for the fine-tuning budget), `pretrained` (`gd.remedies.greedy_pretrain`,
then the same fine-tuning budget) and `none+compute` (no pre-training, but as many extra supervised steps as
the pre-training cost in multiply-adds), so pre-training is charged for its compute. The optimisers: SGD with
momentum (the era of Hinton et al. 2006 / Bengio et al. 2007) and Adam (today's default).
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

import gradient_doctor as gd

from ..datasets import Split, mnist1d
from ..experiment import Claim, Context, Result
from ..tasks import plain_mlp
from ..train import accuracy, single_thread, train_curve

NAME = "pretraining"
SUMMARY = "Greedy layer-wise pre-training vs none for a deep sigmoid MLP, at the same fine-tuning budget and compute"

OPTIMISERS = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), "adam": lambda p: torch.optim.Adam(p, lr=1e-3)}
ARMS = ("none", "pretrained", "none+compute")
MARGIN = 0.02  # mean test-accuracy gain (absolute) below which pre-training does not count as better


@dataclass(frozen=True)
class Budget:
    hidden: int  # hidden sigmoid layers
    width: int
    steps: int  # fine-tuning steps (supervised)
    batch: int
    pretrain_epochs: int
    pretrain_lr: float  # Adam, batch `batch`, as greedy_pretrain
    seeds: int


QUICK = Budget(hidden=6, width=100, steps=400, batch=64, pretrain_epochs=1, pretrain_lr=1e-2, seeds=1)
FULL = Budget(hidden=6, width=100, steps=2000, batch=64, pretrain_epochs=10, pretrain_lr=1e-2, seeds=3)


def build(inputs: int, budget: Budget, seed: int) -> nn.Sequential:
    """`budget.hidden` Linear+Sigmoid blocks then Linear(width, 10), PyTorch's default init.

        >>> build(40, FULL, seed=0)     # Linear(40, 100), Sigmoid, ..., Linear(100, 10)
    """
    torch.manual_seed(seed)
    first = nn.Linear(inputs, budget.width)  # drawn first, then the rest in order
    return nn.Sequential(first, nn.Sigmoid(), *plain_mlp(budget.hidden, budget.width, nn.Sigmoid))


def pretrain_multiply_adds(model: nn.Sequential, examples: int, epochs: int) -> int:
    """Multiply-adds greedy_pretrain spends: per hidden layer and example, a no-grad forward through the layers
    below, forward + weight gradient through the layer (2 × in × out; its input needs no gradient) and forward,
    input and weight gradients through its decoder (3 × in × out). Optimiser updates are not counted.

        >>> pretrain_multiply_adds(nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2)), 10, 1)
        600
    """
    sizes = [m.in_features * m.out_features for m in model if isinstance(m, nn.Linear)][:-1]
    per_example = sum(sum(sizes[:k]) + 5 * size for k, size in enumerate(sizes))
    return per_example * examples * epochs


def step_multiply_adds(model: nn.Sequential, batch: int) -> int:
    """Multiply-adds of one supervised step: forward, input and weight gradients through every nn.Linear
    (3 × in × out), less the first layer's input gradient, which autograd does not compute.

        >>> step_multiply_adds(nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2)), 1)
        42
    """
    sizes = [m.in_features * m.out_features for m in model if isinstance(m, nn.Linear)]
    return batch * (3 * sum(sizes) - sizes[0])


def run(ctx: Context) -> Result:
    budget = QUICK if ctx.quick else FULL
    data = mnist1d()
    rows = []
    with single_thread():
        for k in range(budget.seeds):
            rows += _seed(ctx.seed + k, data, budget, ctx)
            ctx.finished(f"seed {ctx.seed + k}: none, pretrained and none+compute under both optimisers")
    return Result(rows=rows, claims=_claims(rows, budget), notes=_notes(rows, budget))


def _seed(seed: int, data: Split, budget: Budget, ctx: Context) -> list[dict]:
    initial = build(data.x_train.shape[1], budget, seed)
    pretrained = copy.deepcopy(initial)
    torch.manual_seed(seed)
    start = time.perf_counter()
    gd.remedies.greedy_pretrain(pretrained, inputs=data.x_train, epochs=budget.pretrain_epochs,
                                lr=budget.pretrain_lr, batch_size=budget.batch, progress=False)
    pretrain_seconds = time.perf_counter() - start
    extra = round(pretrain_multiply_adds(initial, len(data.y_train), budget.pretrain_epochs)
                  / step_multiply_adds(initial, budget.batch))
    starts = {"none": (initial, budget.steps), "pretrained": (pretrained, budget.steps),
              "none+compute": (initial, budget.steps + extra)}
    rows = []
    for optimiser, make in OPTIMISERS.items():
        for arm in ARMS:
            model, steps = copy.deepcopy(starts[arm][0]), starts[arm][1]
            start = time.perf_counter()
            losses = train_curve(model, data, steps=steps, batch=budget.batch, optimizer=make(model.parameters()),
                                 seed=seed, progress=ctx.progress, description=f"{optimiser}, {arm}, seed {seed}")
            rows.append({"optimiser": optimiser, "arm": arm, "seed": seed, "supervised_steps": steps,
                         "pretrain_step_equivalents": extra if arm == "pretrained" else 0,
                         "seconds": time.perf_counter() - start + (pretrain_seconds if arm == "pretrained" else 0.0),
                         "final_loss": losses[-max(1, steps // 10):].mean().item(),
                         "test_acc": accuracy(model, data.x_test, data.y_test)})
    return rows


def _accuracies(rows: list[dict], optimiser: str, arm: str) -> list[float]:
    """Test accuracies of one arm, in seed order."""
    chosen = [r for r in rows if (r["optimiser"], r["arm"]) == (optimiser, arm)]
    return [r["test_acc"] for r in sorted(chosen, key=lambda r: r["seed"])]


def _comparison(rows: list[dict], rival: str) -> tuple[str, list[str]]:
    """Pre-trained vs `rival` per optimiser: the text, and the optimisers where pre-training wins by > MARGIN in
    the mean and in every seed."""
    parts, winners = [], []
    for optimiser in OPTIMISERS:
        ours, theirs = _accuracies(rows, optimiser, "pretrained"), _accuracies(rows, optimiser, rival)
        wins = sum(a > b for a, b in zip(ours, theirs))
        if statistics.mean(ours) > statistics.mean(theirs) + MARGIN and wins == len(ours):
            winners.append(optimiser)
        parts.append(f"{optimiser}: {rival} {statistics.mean(theirs):.3f}, pretrained {statistics.mean(ours):.3f} "
                     f"(higher in {wins}/{len(ours)} seeds)")
    return "mean test accuracy — " + "; ".join(parts), winners


def _claims(rows: list[dict], budget: Budget) -> list[Claim]:
    verdict = lambda winners: {len(OPTIMISERS): "holds", 0: "does not hold"}.get(  # noqa: E731
        len(winners), "holds with conditions")
    claims = []
    for claim, rival in (("Greedy layer-wise pre-training lets a deep sigmoid net train better (same fine-tuning "
                          "budget)", "none"),
                         ("... also when the pre-training compute is given to the un-pretrained net as extra "
                          "steps", "none+compute")):
        text, winners = _comparison(rows, rival)
        claims.append(Claim(claim, f"{text}; pre-trained better (by > {MARGIN} in the mean, in every seed) with: "
                                   f"{', '.join(winners) or 'neither optimiser'}", verdict(winners),
                            runs=budget.seeds, needed=FULL.seeds))
    return claims


def _notes(rows: list[dict], budget: Budget) -> list[str]:
    extra = next(r["supervised_steps"] - budget.steps for r in rows if r["arm"] == "none+compute")
    return [
        f"Net: {budget.hidden} hidden sigmoid layers of width {budget.width} (PyTorch default init), MNIST-1D "
        f"(4,000 train / 1,000 test). Fine-tuning: {budget.steps} steps, batch {budget.batch}; SGD lr 0.1 momentum "
        f"0.9, or Adam lr 1e-3; {budget.seeds} seed(s), accuracies are means over seeds.",
        f"Pre-training: gd.remedies.greedy_pretrain, {budget.pretrain_epochs} epochs per hidden layer, Adam lr "
        f"{budget.pretrain_lr}, batch {budget.batch} (mean-squared reconstruction, linear decoder). Its cost in "
        f"multiply-adds equals {extra} supervised steps — the none+compute arm trains that many steps more; "
        "`seconds` of the pretrained arm include the pre-training's wall time.",
        "Deviation from the literature: autoencoders (not RBMs or denoising autoencoders), MNIST-1D instead of "
        "MNIST, a few thousand steps instead of many epochs (CPU budget).",
    ]
