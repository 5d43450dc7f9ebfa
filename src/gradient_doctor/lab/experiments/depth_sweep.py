"""depth-sweep: depth × activation × init × {plain, batchnorm, residual} on MNIST-1D — the end-to-end gradient
ratio at init (checkup) and the test accuracy after a fixed SGD budget; heatmaps of both.

    >>> result = run_experiment("depth-sweep", quick=True, out=Path("lab-out"))
    >>> [c.verdict for c in result.claims]

Each configuration is built from `torch.manual_seed(seed)` (so every default-init net of one depth has the same
weights whatever its activation), measured by `gd.checkup` on the first 256 training examples with the task loss
(`budget.end_to_end`: ‖δ‖ at the first layer's output / at the logits), then trained with `train_classifier`.
A ratio is "healthy" inside [e^-3, e^3] (diagnose.thresholds.FADE/GROWTH, the 6ξ trainability limit of Schoenholz
et al. 2017).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ...diagnose import checkup
from ...probe.batch.budget import FADE, GROWTH
from ..datasets import mnist1d
from ..experiment import Claim, Context, Result
from ..train import single_thread, train_classifier
from ._depth_models import ACTIVATIONS, ARCHS, depth_mlp, weight_gain

NAME = "depth-sweep"
SUMMARY = "which activations, inits and architectures keep the gradient alive with depth, and train on MNIST-1D"

WIDTH, BATCH, CHECK_BATCH = 64, 128, 256
MAX_LR, LR_TIMES_DEPTH = 0.05, 0.5  # SGD lr = min(MAX_LR, LR_TIMES_DEPTH / depth)
FULL = {"depths": (5, 10, 20, 40), "activations": tuple(ACTIVATIONS),
        "inits": ("default", "xavier", "he", "orthogonal", "lsuv"), "archs": ARCHS, "steps": 80}
QUICK = {"depths": (5, 10), "activations": ("sigmoid", "relu"), "inits": ("default", "he"), "archs": ARCHS,
         "steps": 25}


def run(ctx: Context) -> Result:
    """Measure and train every configuration of the grid, then judge the five claims from the rows."""
    grid = QUICK if ctx.quick else FULL
    data = mnist1d()
    x, y = data.x_train[:CHECK_BATCH], data.y_train[:CHECK_BATCH]
    configs = [(d, a, i, s) for d in grid["depths"] for a in grid["activations"] for i in grid["inits"]
               for s in grid["archs"]]
    task = ctx.progress.add_task(f"{NAME}: {len(configs)} nets × {grid['steps']} steps", total=len(configs))
    rows = []
    with single_thread():
        for depth, activation, init, arch in configs:
            torch.manual_seed(ctx.seed)
            model = depth_mlp(depth, WIDTH, activation, init=init, arch=arch, inputs=x)
            gain = weight_gain(model)  # at init, as the ratio
            ratio = checkup(model, x, y, nn.CrossEntropyLoss()).measurement.budget.end_to_end
            trained = train_classifier(model, data, grid["steps"], _lr(depth), BATCH, "sgd", ctx.seed)
            rows.append({"depth": depth, "activation": activation, "init": init, "arch": arch,
                         "weight_gain": gain, "ratio": ratio, "log10_ratio": _log10(ratio), **trained})
            ctx.progress.advance(task)
            ctx.finished(f"depth {depth}, {activation}, {init} init, {arch}")
    _heatmaps(ctx, rows, grid)
    return Result(rows, _claims(rows, grid), _notes(grid))


def _lr(depth: int) -> float:
    """Every layer's update moves the output, so the same lr moves a deeper net further: scale lr as 1/depth."""
    return min(MAX_LR, LR_TIMES_DEPTH / depth)


def _claims(rows: list[dict[str, Any]], grid: dict[str, Any]) -> list[Claim]:
    deep = max(grid["depths"])
    at = {(r["depth"], r["activation"], r["init"], r["arch"]): r for r in rows}
    top = [r for r in rows if r["depth"] == deep]
    claims = [_sigmoid_claim(rows, grid)] if "sigmoid" in grid["activations"] else []
    if "relu" in grid["activations"]:
        claims.append(_relu_claim([at[deep, "relu", i, "plain"] for i in grid["inits"]], deep))
    claims.append(_init_claim([r for r in top if r["arch"] == "plain"], grid, deep))
    claims.append(_explodes_claim("Condition for batch norm: without skips it makes the end-to-end gradient ratio "
                                  "explode with depth at init (Yang et al. 2019; the training claims of Ioffe & "
                                  "Szegedy 2015 are tested by `lab batchnorm`)", "batchnorm", rows, grid))
    claims.append(_explodes_claim("Unnormalised x + f(x) explodes (each block adds its branch's variance: no BN, no "
                                  "branch scale; He et al. 2016's blocks are tested by `lab residual`)", "residual",
                                  rows, grid))
    return claims


def _sigmoid_claim(rows: list[dict[str, Any]], grid: dict[str, Any]) -> Claim:
    """Fit log10 ratio against depth for each init of the plain sigmoid nets: the slope per layer, its R², and
    the bound log10(0.25 · sigma_w) that sigmoid' <= 0.25 and weights of gain sigma_w give."""
    fits = []
    for init in grid["inits"]:
        own = [r for r in rows if r["activation"] == "sigmoid" and r["init"] == init and r["arch"] == "plain"]
        depths = np.array([r["depth"] for r in own], dtype=float)
        logs = np.array([r["log10_ratio"] for r in own])
        slope, intercept = np.polyfit(depths, logs, 1)
        residual = logs - (slope * depths + intercept)
        r2 = 1 - float(residual @ residual) / float(((logs - logs.mean()) ** 2).sum())
        bound = math.log10(0.25 * float(np.mean([r["weight_gain"] for r in own])))
        fits.append((init, slope, r2, bound))
    geometric = [init for init, slope, r2, _ in fits if slope < -0.1 and r2 >= 0.95]
    measured = "; ".join(f"{init}: slope {slope:+.3f}/layer (R² {r2:.3f}) vs log10(0.25·σ_w) {bound:+.3f}"
                         for init, slope, r2, bound in fits)
    return Claim("sigmoid derivatives <= 0.25 make gradients shrink geometrically with depth",
                 f"plain sigmoid nets, log10 end-to-end ratio fitted linearly in depth {list(grid['depths'])} — "
                 f"{measured}", _verdict(len(geometric), len(fits)))


def _relu_claim(relu: list[dict[str, Any]], deep: int) -> Claim:
    healthy = [r for r in relu if _healthy(r)]
    measured = ", ".join(f"{r['init']} {r['ratio']:.2g} ({r['test_accuracy']:.0%})" for r in relu)
    return Claim("ReLU solves the vanishing gradient problem",
                 f"plain ReLU nets at depth {deep}, end-to-end ratio (test accuracy) per init: {measured}; "
                 f"healthy in {len(healthy)}/{len(relu)} inits", _verdict(len(healthy), len(relu)))


def _init_claim(plain: list[dict[str, Any]], grid: dict[str, Any], deep: int) -> Claim:
    parts, healthy, total = [], 0, 0
    for init in [i for i in ("default", "xavier", "he") if i in grid["inits"]]:
        own = [r for r in plain if r["init"] == init]
        good = [r for r in own if _healthy(r)]
        bad = ", ".join(f"{r['activation']} {r['ratio']:.2g}" for r in own if not _healthy(r)) or "none"
        parts.append(f"{init} {len(good)}/{len(own)} (not: {bad})")
        if init != "default":
            healthy, total = healthy + len(good), total + len(own)
    return Claim("Xavier/He init prevents it (the vanishing gradient)",
                 f"plain nets at depth {deep}, activations with a healthy ratio at init: " + "; ".join(parts),
                 _verdict(healthy, total))


def _explodes_claim(claim: str, arch: str, rows: list[dict[str, Any]], grid: dict[str, Any]) -> Claim:
    """`arch`'s nets at the deepest depth: holds when every ratio at init is above e^3 (or not finite), with
    conditions when some are. Healthy counts at every depth, accuracies and divergence are reported beside."""
    deep = max(grid["depths"])

    def healthy(depth: int, kind: str) -> str:
        own = [r for r in rows if r["depth"] == depth and r["arch"] == kind]
        return f"{sum(map(_healthy, own))}/{len(own)}"

    by_depth = ", ".join(f"{d}: {arch} {healthy(d, arch)} vs plain {healthy(d, 'plain')}" for d in grid["depths"])
    with_it = [r for r in rows if r["depth"] == deep and r["arch"] == arch]
    plain = [r for r in rows if r["depth"] == deep and r["arch"] == "plain"]
    vanish = sum(r["ratio"] < FADE for r in with_it)
    explode = sum(not r["ratio"] <= GROWTH for r in with_it)  # NaN counts as exploded
    measured = (f"healthy ratio at init (e^-3..e^3), by depth — {by_depth}; at depth {deep}, {arch} ratios exploding "
                f"(> e^3) {explode}/{len(with_it)}, vanishing (< e^-3) {vanish}, median "
                f"{np.nanmedian([r['ratio'] for r in with_it]):.3g}; mean test accuracy after the short budget "
                f"{np.mean([r['test_accuracy'] for r in with_it]):.0%} vs plain "
                f"{np.mean([r['test_accuracy'] for r in plain]):.0%}; diverged in training "
                f"{sum(r['diverged'] for r in with_it)}/{len(with_it)}")
    return Claim(claim, measured, _verdict(explode, len(with_it)))


def _verdict(good: int, total: int) -> str:
    return "holds" if good == total else "holds with conditions" if good > 0 else "does not hold"


def _healthy(row: dict[str, Any]) -> bool:
    return FADE <= row["ratio"] <= GROWTH


def _log10(value: float) -> float:
    return math.log10(value) if value > 0 else (-math.inf if value == 0 else math.nan)


def _heatmaps(ctx: Context, rows: list[dict[str, Any]], grid: dict[str, Any]) -> None:
    """Two PNGs, one panel per architecture: rows activations, columns init × depth."""
    for key, label, name, limits in (("log10_ratio", "log10 end-to-end gradient ratio at init", "ratio", (-6, 6)),
                                     ("test_accuracy", f"test accuracy after {grid['steps']} steps", "accuracy",
                                      (0, 1))):
        plotting = ctx.pyplot(f"{NAME}-{name}")
        if plotting is None:
            return
        plt, path = plotting

        columns = [(i, d) for i in grid["inits"] for d in grid["depths"]]
        at = {(r["activation"], r["init"], r["depth"], r["arch"]): r[key] for r in rows}
        fig, axes = plt.subplots(1, len(grid["archs"]), figsize=(4 + 0.45 * len(columns) * len(grid["archs"]),
                                                                 1.5 + 0.4 * len(grid["activations"])),
                                 squeeze=False)
        for ax, arch in zip(axes[0], grid["archs"]):
            values = np.array([[at[a, i, d, arch] for i, d in columns] for a in grid["activations"]], dtype=float)
            image = ax.imshow(np.clip(values, *limits), cmap="RdBu" if name == "ratio" else "viridis",
                              vmin=limits[0], vmax=limits[1], aspect="auto")
            ax.set_title(arch)
            ax.set_xticks(range(len(columns)), [f"{i} {d}" for i, d in columns], rotation=90, fontsize=7)
            ax.set_yticks(range(len(grid["activations"])), grid["activations"] if ax is axes[0][0] else [],
                          fontsize=8)
        fig.colorbar(image, ax=axes[0].tolist(), label=label + (" (clipped to ±6)" if name == "ratio" else ""))
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)


def _notes(grid: dict[str, Any]) -> list[str]:
    return [
        "Dataset: MNIST-1D (4000 train / 1000 test, 40 features, 10 classes), generated locally.",
        f"Grid: depths {list(grid['depths'])} (number of Linear layers), width {WIDTH}, activations "
        f"{list(grid['activations'])}, inits {list(grid['inits'])}, architectures {list(grid['archs'])}; "
        f"{len(grid['depths']) * len(grid['activations']) * len(grid['inits']) * len(grid['archs'])} nets, "
        "one seed each.",
        f"Budget per net: {grid['steps']} steps of SGD (momentum 0.9), batch {BATCH}, lr = min({MAX_LR:g}, "
        f"{LR_TIMES_DEPTH:g} / depth) ({', '.join(f'{d}: {_lr(d):.3g}' for d in grid['depths'])}), no clipping, "
        f"no schedule, one CPU thread. A deliberately small budget ({grid['steps'] * BATCH / 4000:.1f} epochs) so "
        "the whole grid fits ~6 min on 2 shared CPU cores; accuracies are those of a short run, not converged "
        "ones, and one lr rule for all nets favours none of them.",
        f"Ratio: gd.checkup on the first {CHECK_BATCH} training examples with the cross-entropy loss, "
        "budget.end_to_end = ‖∂L/∂(first layer's output)‖ / ‖∂L/∂logits‖. Healthy: e^-3 <= ratio <= e^3.",
        "Inits are applied to the plain net, then the architecture: batchnorm = BatchNorm after every hidden "
        "Linear (before the activation), residual = x + f(x) around every hidden Linear+activation (fixed branch "
        "scale 1 and no normalisation: not He et al. 2016's block, which has BN in the branch; gradient-doctor's "
        "own add_residual default starts the branch at 0 instead). xavier uses gain 1 (the paper's), he/orthogonal the activation's gain "
        "(sigmoid 1, tanh 5/3, ReLU √2, SELU 1), lsuv fits unit output variance per layer on the 256 examples.",
        "Batch norm and residual rows here are conditions, not the papers' claims: BN without skips, and the "
        "unnormalised x + f(x) stack (`lab batchnorm` and `lab residual` test Ioffe & Szegedy 2015 and He et al. "
        "2016 in their settings). Deviations from the papers: "
        "small MLPs, one seed, few steps.",
    ]
