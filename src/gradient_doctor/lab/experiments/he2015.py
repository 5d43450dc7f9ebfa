"""He et al. 2015: deep plain ReLU nets converge with He init (variance 2/fan_in); with Xavier init the
30-layer net stalls, the 22-layer one converges more slowly.

    >>> result = run_experiment("he2015", quick=True, out=Path("lab-out"))
    >>> result.claims[0].verdict

The paper trained 22- and 30-layer convnets on ImageNet (SGD, momentum 0.9); here plain MLPs of the same depths
(depth = number of nn.Linear layers, ReLU between them, zero biases) on MNIST-1D, SGD with momentum 0.9, and
several seeds. Xavier init is `gd.remedies.xavier_init(distribution="normal")`, variance 2/(fan_in + fan_out)
(= 1/n for the square hidden layers: the paper's "Xavier"); He init is `gd.remedies.he_init`, variance 2/fan_in
into a ReLU and 1/fan_in for the output layer. A run "converges" when its training loss, averaged over the last
WINDOW steps, falls below THRESHOLD × ln 10 (the loss of a uniform guess over 10 classes); "stalls" when it never
does within the budget.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
from torch import nn

import gradient_doctor as gd

from ...errors import InvalidValue
from ..datasets import Split, mnist1d
from ..experiment import Claim, Context, Result
from ..tasks import plain_mlp
from ..train import accuracy, single_thread, train_curve, window_mean

NAME = "he2015"
SUMMARY = "He et al. 2015: 22- and 30-layer plain ReLU nets, Xavier vs He init — which converge, and how fast"

INITS = {"xavier": lambda m: gd.remedies.xavier_init(m, distribution="normal"), "he": gd.remedies.he_init}
THRESHOLD = 0.8  # converged: windowed training loss below 0.8 × ln 10 ≈ 1.84 (MNIST-1D MLPs reach ~1.0)
WINDOW = 50


@dataclass(frozen=True)
class Budget:
    depths: tuple[int, ...]
    width: int
    steps: int
    batch: int
    lr: float  # SGD, momentum 0.9 (the paper's optimiser)
    seeds: int


QUICK = Budget(depths=(22, 30), width=32, steps=400, batch=64, lr=0.01, seeds=1)
FULL = Budget(depths=(22, 30), width=64, steps=2000, batch=64, lr=0.01, seeds=3)


def build(depth: int, init: str, inputs: int, width: int, seed: int) -> nn.Sequential:
    """A plain ReLU MLP of `depth` nn.Linear layers (zero biases) with Xavier or He init.

        >>> build(30, "he", 40, 64, seed=0)     # Linear(40, 64), ReLU, ..., Linear(64, 10)
    """
    if init not in INITS:
        raise InvalidValue(f"init must be one of {list(INITS)}; got {init!r}")
    torch.manual_seed(seed)
    model = plain_mlp(depth, width, nn.ReLU, inputs=inputs)
    return INITS[init](model)


def steps_to_converge(losses: torch.Tensor) -> int | None:
    """The first step (1-based) at which the windowed training loss is below THRESHOLD × ln 10, or None.

        >>> steps_to_converge(torch.full((100,), 2.3)) is None
        True
    """
    below = (window_mean(losses, WINDOW) < THRESHOLD * math.log(10)).nonzero()
    return int(below[0]) + 1 if len(below) else None


def run(ctx: Context) -> Result:
    budget = QUICK if ctx.quick else FULL
    data = mnist1d()
    rows, curves = [], {}
    with single_thread():
        for depth in budget.depths:
            for init in INITS:
                for k in range(budget.seeds):
                    row, losses = _one(depth, init, ctx.seed + k, data, budget, ctx)
                    rows.append(row)
                    ctx.finished(f"{depth} layers, {init} init, seed {ctx.seed + k}: {row['steps_to_converge']}")
                    curves.setdefault((depth, init), []).append(losses)
    _plot(ctx, curves, budget)
    return Result(rows=rows, claims=_claims(rows, budget), notes=_notes(budget))


def _one(depth: int, init: str, seed: int, data: Split, budget: Budget, ctx: Context) -> tuple[dict, torch.Tensor]:
    model = build(depth, init, data.x_train.shape[1], budget.width, seed)
    x, y = data.x_train[:256], data.y_train[:256]
    end_to_end = gd.checkup(model, x, y, nn.functional.cross_entropy).measurement.budget.end_to_end
    with torch.no_grad():
        top_std = model[:-1](x).std().item()  # the last hidden layer's output scale at init
    optimizer = torch.optim.SGD(model.parameters(), lr=budget.lr, momentum=0.9)
    losses = train_curve(model, data, steps=budget.steps, batch=budget.batch, optimizer=optimizer, seed=seed,
                         progress=ctx.progress, description=f"{depth} layers, {init} init, seed {seed}")
    converged = steps_to_converge(losses)
    row = {"depth": depth, "init": init, "seed": seed, "end_to_end_at_init": end_to_end,
           "top_hidden_std_at_init": top_std, "steps_to_converge": converged if converged is not None else "stalled",
           "final_loss": losses[-budget.steps // 10:].mean().item(),
           "test_acc": accuracy(model, data.x_test, data.y_test)}
    return row, window_mean(losses, WINDOW)


def _summary(rows: list[dict], depth: int, init: str) -> tuple[int, int, float | None]:
    """(runs converged, runs, median steps to converge over the converged runs or None)."""
    steps = [r["steps_to_converge"] for r in rows if r["depth"] == depth and r["init"] == init]
    done = [s for s in steps if s != "stalled"]
    return len(done), len(steps), statistics.median(done) if done else None


def _describe(rows: list[dict], depth: int) -> str:
    parts = []
    for init in INITS:
        done, total, median = _summary(rows, depth, init)
        losses = [r["final_loss"] for r in rows if r["depth"] == depth and r["init"] == init]
        speed = f", median {median:g} steps" if median is not None else ""
        parts.append(f"{init}: {done}/{total} runs converged{speed}, final loss {statistics.mean(losses):.3f}")
    return f"{depth} layers — " + "; ".join(parts)


def _claims(rows: list[dict], budget: Budget) -> list[Claim]:
    deep, shallow = max(budget.depths), min(budget.depths)
    xavier_deep, he_deep = _summary(rows, deep, "xavier"), _summary(rows, deep, "he")
    if he_deep[0] == he_deep[1] and xavier_deep[0] == 0:
        verdict = "holds"
    elif he_deep[0] > xavier_deep[0]:
        verdict = "holds with conditions"
    else:
        verdict = "does not hold"
    runs = dict(runs=budget.seeds, needed=FULL.seeds)
    claims = [Claim(f"A {deep}-layer plain ReLU net with Xavier init stalls; with He init it converges",
                    _describe(rows, deep), verdict, **runs)]
    xavier, he = _summary(rows, shallow, "xavier"), _summary(rows, shallow, "he")
    both = xavier[0] == xavier[1] and he[0] == he[1]
    he_faster = he[2] is not None and (xavier[2] is None or he[2] < xavier[2])
    if both and he_faster:
        verdict = "holds"
    elif he_faster:
        verdict = "holds with conditions"  # He converges first, Xavier not (in every run) within the budget
    else:
        verdict = "does not hold"
    claims.append(Claim(f"A {shallow}-layer plain ReLU net converges with both inits, faster with He init",
                        _describe(rows, shallow), verdict, **runs))
    return claims


def _notes(budget: Budget) -> list[str]:
    return [
        f"Budget per run: {budget.steps} SGD steps (momentum 0.9, lr {budget.lr}), batch {budget.batch}, width "
        f"{budget.width}, {budget.seeds} seed(s) per configuration; MNIST-1D (4,000 train / 1,000 test).",
        f"Converged = training loss averaged over {WINDOW} steps below {THRESHOLD} × ln 10 = "
        f"{THRESHOLD * math.log(10):.2f}; 'stalled' = never within the budget.",
        "Deviation from the paper: plain MLPs on MNIST-1D instead of 22/30-layer convnets on ImageNet, thousands "
        "of steps instead of epochs, one learning rate for both inits (CPU budget).",
        "end_to_end_at_init: gd.checkup's backward-signal ratio, first layer over last, on 256 training examples.",
    ]


def _plot(ctx: Context, curves: dict, budget: Budget) -> None:
    plotting = ctx.pyplot("he2015")
    if plotting is None:
        return
    plt, path = plotting

    fig, axes = plt.subplots(1, len(budget.depths), figsize=(6 * len(budget.depths), 4), sharey=True)
    for ax, depth in zip(axes, budget.depths):
        for k, init in enumerate(INITS):
            for j, curve in enumerate(curves[depth, init]):
                ax.plot(curve, color=f"C{k}", alpha=0.8, label=f"{init} init" if j == 0 else None)
        ax.axhline(THRESHOLD * math.log(10), color="grey", ls=":", label="converged below")
        ax.set(title=f"{depth}-layer plain ReLU MLP, MNIST-1D", xlabel="step",
               ylabel=f"training loss (mean of {WINDOW} steps)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
