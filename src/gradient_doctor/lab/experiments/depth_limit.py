"""depth-limit: the deepest plain (no skip, no norm) tanh MLP that trains on MNIST-1D, at PyTorch's default init
and after repair by `critical_init` (edge of chaos + orthogonal) or `orthogonal_init` (gain 5/3).

    >>> result = run_experiment("depth-limit", quick=True, out=Path("lab-out"))
    >>> result.rows[0]["deepest_trained"]

For each init, depths are tried in increasing order; after two consecutive depths that fail to train, deeper ones
are not run (recorded as skipped). "Trains": test accuracy >= 30 % after the budget (chance 10 %).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from ...diagnose import checkup
from ..datasets import Split, mnist1d
from ..experiment import Claim, Context, Result
from ..train import single_thread, train_classifier
from ._depth_models import depth_mlp

NAME = "depth-limit"
SUMMARY = "how deep a plain tanh MLP still trains on MNIST-1D: PyTorch's default init vs critical/orthogonal init"

WIDTH, BATCH, CHECK_BATCH = 32, 128, 256
TRAINS = 0.30  # test accuracy that counts as "trains" (chance: 0.10)
MAX_LR, LR_TIMES_DEPTH = 1e-3, 0.03  # Adam lr = min(MAX_LR, LR_TIMES_DEPTH / depth)
GIVE_UP_AFTER = 2  # consecutive failed depths
LINEAR = "linear softmax"  # the reference row's init
FULL = {"depths": (10, 30, 100, 300, 1000), "inits": ("default", "orthogonal", "critical"), "steps": 300}
QUICK = {"depths": (10, 30), "inits": ("default", "critical"), "steps": 60}


def run(ctx: Context) -> Result:
    """Search the depths for each init, train a linear reference, then judge the two claims from the rows."""
    grid = QUICK if ctx.quick else FULL
    data = mnist1d()
    x, y = data.x_train[:CHECK_BATCH], data.y_train[:CHECK_BATCH]
    rows = []
    with single_thread():
        for init in grid["inits"]:
            failed = 0
            for depth in grid["depths"]:
                if failed >= GIVE_UP_AFTER:
                    rows.append(_row(init, depth, grid["steps"], skipped=True))
                    continue
                torch.manual_seed(ctx.seed)
                model = depth_mlp(depth, WIDTH, "tanh", init=init, inputs=x)
                budget = checkup(model, x, y, nn.CrossEntropyLoss()).measurement.budget
                task = ctx.progress.add_task(f"{NAME}: {init} init, depth {depth}", total=grid["steps"])
                start = time.perf_counter()
                trained = train_classifier(model, data, grid["steps"], _lr(depth), BATCH, "adam", ctx.seed,
                                           progress_task=(ctx.progress, task))
                ctx.progress.remove_task(task)
                row = _row(init, depth, grid["steps"], ratio=budget.end_to_end, xi=budget.xi,
                           seconds=time.perf_counter() - start, **trained)
                failed = 0 if row["trains"] else failed + 1
                rows.append(row)
                ctx.finished(f"{init} init, depth {depth}: test accuracy {row['test_accuracy']:.0%}")
        rows.append(_linear_reference(data, grid["steps"], ctx.seed))
    return Result(rows, _claims(rows, grid), _notes(grid))


def _linear_reference(data: Split, steps: int, seed: int) -> dict[str, Any]:
    """A softmax regression (one Linear layer) with the same budget: what a net that is linear end to end gets."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    trained = train_classifier(nn.Linear(data.x_train.shape[1], 10), data, steps, _lr(1), BATCH, "adam", seed)
    return _row(LINEAR, 1, steps, seconds=time.perf_counter() - start, **trained)


def _lr(depth: int) -> float:
    """Adam's step moves every layer by ~lr, so the output moves ~depth × lr: scale lr as 1/depth."""
    return min(MAX_LR, LR_TIMES_DEPTH / depth)


def _row(init: str, depth: int, steps: int, *, skipped: bool = False, ratio: float = math.nan,
         xi: float = math.nan, seconds: float = math.nan, train_loss: float = math.nan,
         test_accuracy: float = math.nan, diverged: bool = False) -> dict[str, Any]:
    return {"init": init, "depth": depth, "status": "skipped" if skipped else "run", "ratio": ratio, "xi": xi,
            "lr": _lr(depth), "steps": steps, "train_loss": train_loss, "test_accuracy": test_accuracy,
            "diverged": diverged, "trains": (not skipped) and test_accuracy >= TRAINS, "seconds": seconds}


def deepest_trained(rows: list[dict[str, Any]], init: str) -> int:
    """The deepest depth at which `init` trained (0 when none did).

    >>> deepest_trained(result.rows, "critical")
    1000
    """
    return max([r["depth"] for r in rows if r["init"] == init and r["trains"]], default=0)


def _claims(rows: list[dict[str, Any]], grid: dict[str, Any]) -> list[Claim]:
    goal = max(grid["depths"])
    limits = {init: deepest_trained(rows, init) for init in grid["inits"]}
    (linear,) = [r for r in rows if r["init"] == LINEAR]
    repairs = [init for init in grid["inits"] if init != "default"]
    best = max(repairs, key=lambda init: limits[init])
    described = "; ".join(f"{init}: {_describe(rows, init)}" for init in grid["inits"])
    at_goal = [r for r in rows if r["init"] == best and r["depth"] == goal]
    verdict = ("holds" if limits[best] >= goal else
               "holds with conditions" if limits[best] >= 10 * max(limits["default"], 1) else "does not hold")
    why = f" {best} at {goal} layers: " + (
        f"test accuracy {at_goal[0]['test_accuracy']:.1%}, ratio at init {at_goal[0]['ratio']:.3g}"
        if at_goal and at_goal[0]["status"] == "run" else "not run (two shallower depths failed)") + "."
    default_xi = [r["xi"] for r in rows if r["init"] == "default" and r["status"] == "run" and r["xi"] > 0]
    return [
        Claim(f"a plain tanh MLP of {goal} layers trains after repair (critical_init / orthogonal_init)",
              f"deepest depth with test accuracy >= {TRAINS:.0%}: " + ", ".join(f"{i} {limits[i]}" for i in limits)
              + f" (searched {list(grid['depths'])}).{why} Same budget, one Linear layer (softmax regression): "
              f"{linear['test_accuracy']:.1%}.", verdict),
        Claim("PyTorch's default init limits the trainable depth of a plain tanh net; repair extends it",
              f"{described}. Default init's depth scale ξ ≈ {min(default_xi, default=math.nan):.2g} layers: "
              f"6ξ ≈ {6 * min(default_xi, default=math.nan):.0f} layers predicted trainable (Schoenholz et al. "
              f"2017) vs {limits['default']} measured",
              "holds" if limits[best] > limits["default"] else "does not hold"),
    ]


def _describe(rows: list[dict[str, Any]], init: str) -> str:
    run_rows = [r for r in rows if r["init"] == init and r["status"] == "run"]
    return ", ".join(f"{r['depth']}: {r['test_accuracy']:.0%} (ratio {r['ratio']:.2g})" for r in run_rows)


def _notes(grid: dict[str, Any]) -> list[str]:
    lrs = ", ".join(f"{d}: {_lr(d):.2g}" for d in grid["depths"])
    return [
        "Dataset: MNIST-1D (4000 train / 1000 test, 40 features, 10 classes), generated locally.",
        f"Model: depth Linear layers (40 → {WIDTH}, {WIDTH} → {WIDTH} × (depth − 2), {WIDTH} → 10), tanh between "
        "them, no skip connections, no normalisation. Inits: default = PyTorch's nn.Linear init (σ_w² = 1/3: "
        "ordered phase), orthogonal = orthogonal_init (gain 5/3: σ_w² ≈ 2.8, chaotic phase), critical = "
        "critical_init (orthogonal × σ_w ≈ 1.02, σ_b² = 1e-5: χ₁ = 1, dynamical isometry).",
        f"Budget per net: {grid['steps']} Adam steps, batch {BATCH}, lr = min({MAX_LR:g}, {LR_TIMES_DEPTH:g} / depth) "
        f"({lrs}), no clipping, no schedule, one CPU thread, one seed. The whole run is sized for ~6 min on 2 "
        "shared CPU cores; the 1000-layer net alone takes most of it.",
        f"'Trains' = test accuracy >= {TRAINS:.0%} (chance 10 %; a linear softmax on MNIST-1D reaches ~30-40 %). "
        f"After {GIVE_UP_AFTER} consecutive failed depths an init's deeper nets are skipped.",
        "Ratio: gd.checkup end-to-end backward ratio at init on 256 training examples (cross-entropy); ξ: the depth "
        "scale checkup derives from it. Adam, not SGD, because its per-parameter normalisation makes one lr rule "
        "work across depths; it also partly hides a vanishing gradient, so the default init's limit here is, if "
        "anything, optimistic.",
    ]
