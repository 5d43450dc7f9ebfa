"""The seed material's recognition signs of a vanishing gradient, measured on a net that has one and a net that has
not: relative update per layer, weights going to 0, the accumulated gradient (w₀ − wₙ)/η per layer as a
detector, the loss stagnating early; and "too-large initial weights saturate activations and gradients vanish".

    >>> result = run_experiment("signs", quick=True, out=Path("lab-out"))
    >>> [(c.claim, c.verdict) for c in result.claims]

Two 10-layer MLPs of width 64 on MNIST-1D: "vanishing" (sigmoid, PyTorch's default init: gd.checkup's end-to-end
ratio ~1e-7) and "healthy" (ReLU, He init), each trained under several optimisers (see RECIPES) from the same
seeds and batches. Per Linear layer: the relative update ‖wₙ − w₀‖/‖w₀‖, the weight-norm ratio ‖wₙ‖/‖w₀‖ and the
lecture notes' signal ‖(w₀ − wₙ)/η‖ (for plain SGD exactly the summed gradient ‖Σₜ gₜ‖, also recorded). Layers
are compared first (the first Linear) against top (the last hidden Linear, below the output layer).
The init part draws 10-layer sigmoid and tanh MLPs with weights N(0, gain²/fan_in) for growing gains and reads
gd.checkup's saturated fraction and end-to-end ratio.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...diagnose import checkup
from ...probe.batch.budget import FADE
from ..datasets import Split, mnist1d
from ..experiment import Claim, Context, Result
from ..tasks import plain_mlp
from ..train import fit, random_batches, single_thread, window_mean

NAME = "signs"
SUMMARY = ("the seeds' signs of a vanishing gradient (relative update per layer, weights to 0, (w0 - wn)/eta, early "
           "stagnation) and too-large initial weights, measured")

DEPTH, WIDTH, BATCH = 10, 64, 64
RECIPES: dict[str, dict[str, Any]] = {  # name -> optimiser, its arguments
    "sgd": {"optimizer": "sgd", "lr": 0.1},
    "sgd_wd": {"optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-3},
    "momentum": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9},
    "adam": {"optimizer": "adam", "lr": 1e-3},
    "sgd_low_lr": {"optimizer": "sgd", "lr": 1e-4},
}
SPREAD = 10.0  # top/first relative update at or above this: "higher layers change a lot, lower layers barely"
SHRUNK = 0.5  # a layer whose weight norm fell below this fraction of its initial norm "went to 0"
STAGNANT = 0.95  # windowed loss at the end >= this × at EARLY: the loss stagnated after the early phase
EARLY, WINDOW = 100, 50
GAINS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SATURATED = 0.5  # mean saturated fraction at the largest gain that counts as "activations saturate"


@dataclass(frozen=True)
class Budget:
    steps: int
    seeds: int


QUICK = Budget(steps=300, seeds=1)
FULL = Budget(steps=1500, seeds=3)


def build(net: str, seed: int) -> nn.Sequential:
    """The "vanishing" (sigmoid, default init) or "healthy" (ReLU, He init, zero biases) 10-layer MLP."""
    torch.manual_seed(seed)
    if net == "vanishing":
        return plain_mlp(DEPTH, WIDTH, nn.Sigmoid, inputs=40)
    return plain_mlp(DEPTH, WIDTH, nn.ReLU, gain=math.sqrt(2), inputs=40)


def run(ctx: Context) -> Result:
    budget = QUICK if ctx.quick else FULL
    data = mnist1d()
    rows = []
    with single_thread():
        for net, recipe, seed in itertools.product(("vanishing", "healthy"), RECIPES,
                                                   range(ctx.seed, ctx.seed + budget.seeds)):
            rows.append(train_and_measure(net, recipe, seed, data, budget.steps))
            ctx.finished(f"{net} net, {recipe}, seed {seed}")
        x, y = data.x_train[:256], data.y_train[:256]
        for activation, gain, seed in itertools.product(("sigmoid", "tanh"), GAINS,
                                                        range(ctx.seed, ctx.seed + budget.seeds)):
            torch.manual_seed(seed)
            model = plain_mlp(DEPTH, WIDTH, nn.Sigmoid if activation == "sigmoid" else nn.Tanh, gain=gain, inputs=40)
            m = checkup(model, x, y, nn.CrossEntropyLoss()).measurement
            saturated = [layer.saturated_frac for layer in m.layers if layer.role == "activation"]
            rows.append({"part": "init", "activation": activation, "gain": gain, "seed": seed,
                         "saturated": statistics.mean(saturated), "ratio": m.budget.end_to_end,
                         "first_grad": m.layers[0].grad_norm})
        ctx.finished("too-large init: sigmoid and tanh at every gain")
    return Result(rows, claims(rows, budget), _notes(budget))


def train_and_measure(net: str, recipe: str, seed: int, data: Split, steps: int) -> dict[str, Any]:
    """Train `net` with `recipe` for `steps` steps; the per-layer signs (first Linear, top hidden Linear) and the
    loss curve's stagnation."""
    model = build(net, seed)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    first, top = linears[0].weight, linears[-2].weight
    start = [first.detach().clone(), top.detach().clone()]
    summed = [torch.zeros_like(first), torch.zeros_like(top)]
    options = dict(RECIPES[recipe])
    lr = options["lr"]
    optimizer = (torch.optim.Adam(model.parameters(), lr=lr) if options.pop("optimizer") == "adam"
                 else torch.optim.SGD(model.parameters(), **options))

    def accumulate(step: int, loss: torch.Tensor) -> None:
        for total, weight in zip(summed, (first, top)):
            total += weight.grad

    fitted = fit(model, optimizer, random_batches(data, BATCH, seed), nn.functional.cross_entropy, steps,
                 after_step=accumulate)
    losses = window_mean(torch.tensor(fitted.losses, dtype=torch.float64), WINDOW)
    row: dict[str, Any] = {"part": "train", "net": net, "recipe": recipe, "lr": lr, "seed": seed}
    for name, weight, w0, total in zip(("first", "top"), (first, top), start, summed):
        w = weight.detach()
        row[f"{name}_relative_update"] = float((w - w0).norm() / w0.norm())
        row[f"{name}_weight_ratio"] = float(w.norm() / w0.norm())
        row[f"{name}_signal"] = float(((w0 - w) / lr).norm())  # the lecture notes' (w0 - wn) / eta
        row[f"{name}_summed_grad"] = float(total.norm())
    row["loss_early"] = float(losses[min(EARLY, steps) - 1])
    row["loss_end"] = float(losses[-1])
    return row


def _ratio(row: dict[str, Any], key: str) -> float:
    return row[f"top_{key}"] / row[f"first_{key}"] if row[f"first_{key}"] > 0 else math.inf


def claims(rows: list[dict[str, Any]], budget: Budget) -> list[Claim]:
    train = [r for r in rows if r["part"] == "train"]

    def own(net: str, recipe: str) -> list[dict[str, Any]]:
        return [r for r in train if (r["net"], r["recipe"]) == (net, recipe)]

    def spread(net: str, recipe: str) -> list[float]:
        return [_ratio(r, "relative_update") for r in own(net, recipe)]

    def fmt(values: list[float]) -> str:
        return ", ".join(f"{v:.3g}" for v in values)

    runs = dict(runs=budget.seeds, needed=FULL.seeds)
    claims = []

    # 1. relative update per layer
    shows = {recipe: all(s >= SPREAD for s in spread("vanishing", recipe)) for recipe in ("sgd", "momentum", "adam")}
    clean = all(s < SPREAD for s in spread("healthy", "sgd"))
    measured = ("top hidden / first layer relative update ‖wₙ − w₀‖/‖w₀‖ after training — vanishing net: "
                + "; ".join(f"{recipe} {fmt(spread('vanishing', recipe))}" for recipe in shows)
                + f"; healthy net, sgd: {fmt(spread('healthy', 'sgd'))}. ≥ {SPREAD:g} in every seed: "
                + ", ".join(f"{recipe} {'yes' if ok else 'no'}" for recipe, ok in shows.items()))
    verdict = ("does not hold" if not shows["sgd"] or not clean else "holds" if all(shows.values())
               else "holds with conditions")
    claims.append(Claim("The parameters of higher layers change a lot while those of lower layers barely change "
                        "(a sign of vanishing gradients)", measured, verdict, **runs))

    # 2. weights going to 0
    def lowest(net: str, recipe: str) -> list[float]:
        return [min(r["first_weight_ratio"], r["top_weight_ratio"]) for r in own(net, recipe)]

    plain_shrinks = any(v < SHRUNK for v in lowest("vanishing", "sgd"))
    decay = {net: [r["first_weight_ratio"] for r in own(net, "sgd_wd")] for net in ("vanishing", "healthy")}
    decay_shrinks = all(v < SHRUNK for v in decay["vanishing"])
    measured = (f"smallest ‖wₙ‖/‖w₀‖ of the first and top layers — vanishing net, sgd without weight decay: "
                f"{fmt(lowest('vanishing', 'sgd'))}; first layer with weight decay "
                f"{RECIPES['sgd_wd']['weight_decay']:g}: vanishing {fmt(decay['vanishing'])}, healthy "
                f"{fmt(decay['healthy'])}. Below {SHRUNK:g} (went to 0): without weight decay "
                f"{'yes' if plain_shrinks else 'no'}; with it, vanishing net {'yes' if decay_shrinks else 'no'}")
    verdict = "holds" if plain_shrinks else "holds with conditions" if decay_shrinks else "does not hold"
    claims.append(Claim("Model weights become 0 / converge to 0 during training (a sign of vanishing gradients) — "
                        "or only under weight decay?", measured, verdict, **runs))

    # 3. (w0 - wn) / eta as a detector
    def flags(r: dict[str, Any]) -> bool:
        return 1 / _ratio(r, "signal") < FADE

    correct = {recipe: all(flags(r) for r in own("vanishing", recipe)) and
               not any(flags(r) for r in own("healthy", recipe)) for recipe in ("sgd", "momentum", "adam")}
    def mismatch(net: str) -> float:
        return max(abs(r["first_signal"] - r["first_summed_grad"]) / r["first_summed_grad"] for r in own(net, "sgd"))

    measured = ("first / top layer ‖(w₀ − wₙ)/η‖ — "
                + "; ".join(f"{recipe}: vanishing {fmt([1 / _ratio(r, 'signal') for r in own('vanishing', recipe)])}"
                            f", healthy {fmt([1 / _ratio(r, 'signal') for r in own('healthy', recipe)])}"
                            for recipe in correct)
                + ". Detector 'first/top < e^-3 = vanishing' right on both nets in every seed: "
                + ", ".join(f"{recipe} {'yes' if ok else 'no'}" for recipe, ok in correct.items())
                + f". Plain SGD, first layer: (w₀ − wₙ)/η vs Σₜ gₜ, relative difference healthy {mismatch('healthy'):.1g},"
                f" vanishing {mismatch('vanishing'):.1g} (float32 weights drop updates below their resolution: "
                f"the vanishing first layer's summed gradient is {fmt([r['first_summed_grad'] for r in own('vanishing', 'sgd')])})")
    verdict = ("does not hold" if not correct["sgd"] else "holds" if all(correct.values())
               else "holds with conditions")
    claims.append(Claim("The accumulated gradient (w₀ − wₙ)/η per layer detects a vanishing gradient (lecture "
                        "notes)", measured, verdict, **runs))

    # 4. the loss stagnates early
    def stagnates(net: str, recipe: str) -> list[bool]:
        return [r["loss_end"] >= STAGNANT * r["loss_early"] for r in own(net, recipe)]

    def curve(net: str, recipe: str) -> str:
        return fmt([r["loss_early"] for r in own(net, recipe)]) + " → " + fmt([r["loss_end"] for r in own(net, recipe)])

    sign = all(stagnates("vanishing", "sgd")) and not any(stagnates("healthy", "sgd"))
    low_lr = any(stagnates("healthy", "sgd_low_lr"))  # a healthy net that stagnates: the sign is not specific
    escapes = not all(stagnates("vanishing", "adam"))  # the vanishing net's loss moves under Adam: optimiser-bound
    measured = (f"training loss (mean of {WINDOW} steps) at step {EARLY} → at the end — vanishing sgd: "
                f"{curve('vanishing', 'sgd')}; healthy sgd: {curve('healthy', 'sgd')}; healthy sgd at lr "
                f"{RECIPES['sgd_low_lr']['lr']:g}: {curve('healthy', 'sgd_low_lr')}; vanishing adam: "
                f"{curve('vanishing', 'adam')}. Stagnated (end ≥ {STAGNANT:g} × step {EARLY}): vanishing sgd in "
                f"{sum(stagnates('vanishing', 'sgd'))}/{budget.seeds} seeds, vanishing adam in "
                f"{sum(stagnates('vanishing', 'adam'))}, healthy sgd in {sum(stagnates('healthy', 'sgd'))}, "
                f"healthy at the low lr in {sum(stagnates('healthy', 'sgd_low_lr'))}")
    verdict = "does not hold" if not sign else "holds with conditions" if low_lr or escapes else "holds"
    claims.append(Claim("The loss stagnates at a very early phase (a sign of vanishing gradients)", measured, verdict,
                        **runs))

    # 5. too-large initial weights
    init = [r for r in rows if r["part"] == "init"]

    def mean(activation: str, gain: float, key: str) -> float:
        values = [r[key] for r in init if (r["activation"], r["gain"]) == (activation, gain)]
        if key == "saturated":
            return statistics.mean(values)
        return math.exp(statistics.mean(math.log(v) for v in values))  # geometric: ratios span orders

    big = max(GAINS)
    holds_for = [a for a in ("sigmoid", "tanh") if mean(a, big, "saturated") >= SATURATED
                 and mean(a, big, "ratio") < FADE]
    measured = ("10-layer nets, weights N(0, gain²/fan_in): mean saturated fraction / end-to-end ratio (geometric "
                "means over seeds for gradients) by gain — "
                + "; ".join(f"{a}: " + ", ".join(f"{g:g}: {mean(a, g, 'saturated'):.2f} / {mean(a, g, 'ratio'):.2g}"
                                                 for g in GAINS) for a in ("sigmoid", "tanh"))
                + ". First layer's ‖∂L/∂W‖ at gain 1 → " + f"{big:g}: "
                + ", ".join(f"{a} {mean(a, 1.0, 'first_grad'):.2g} → {mean(a, big, 'first_grad'):.2g}"
                            for a in ("sigmoid", "tanh"))
                + f". Saturated (≥ {SATURATED:g}) and vanishing (< e^-3) at gain {big:g}: {holds_for or 'neither'}")
    verdict = "holds" if len(holds_for) == 2 else "holds with conditions" if holds_for else "does not hold"
    claims.append(Claim("If the initial weights are too large, activations saturate and gradients vanish", measured,
                        verdict, **runs))
    return claims


def _notes(budget: Budget) -> list[str]:
    return [
        f"Nets: {DEPTH} Linear layers of width {WIDTH} on MNIST-1D (4000 train); vanishing = sigmoid at PyTorch's "
        "default init, healthy = ReLU with He init and zero biases; the same seeds give both the same batches.",
        f"Training: {budget.steps} steps, batches of {BATCH} drawn with replacement, {budget.seeds} seed(s); "
        "recipes " + ", ".join(f"{k} {v}" for k, v in RECIPES.items()) + ".",
        "first = the first Linear layer, top = the last hidden Linear (the output layer is left out: it always "
        "gets the loss's gradient first-hand). signal = ‖(w₀ − wₙ)/η‖ with η the recipe's lr; for plain SGD "
        "without weight decay it is ‖Σₜ gₜ‖; with momentum it is ‖Σₜ vₜ‖; with Adam it is not a gradient sum.",
        f"Stagnated: the loss averaged over {WINDOW} steps ends at ≥ {STAGNANT:g} × its value at step {EARLY}. "
        f"Went to 0: ‖wₙ‖ < {SHRUNK:g} ‖w₀‖. Relative-update sign: top/first ≥ {SPREAD:g}.",
        f"Too-large init: gains {list(GAINS)}, zero biases, gd.checkup on 256 training examples (saturated = "
        "within 1 % of the output range from a bound, averaged over the activation layers).",
    ]
