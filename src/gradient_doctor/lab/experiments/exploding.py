"""`gradient-doctor lab exploding`: high-gain init plus a high learning rate make an MLP's gradients explode; clipping
by norm, by value and AGC (`gd.clip`) each tried as the fix. (RNNs in Pascanu et al. 2013's setting, with a threshold
sweep: `lab clipping`.)

    >>> result = run_experiment("exploding", quick=True, out=Path("lab-out"))
    >>> [(row["case"], row["method"], row["nonfinite_steps"]) for row in result.rows]

Each case trains the same high-gain model at a high learning rate four times from `torch.manual_seed(seed)` (no
clipping, then each clipping method attached with `gd.clip` after `gd.watch`, so the record holds the raw
gradients), plus a reference at a healthy init without clipping. `gd.watch` records the per-layer gradient norms (the global norm per step is
their root sum of squares) and `run.diagnose()` the findings. Training "is restored" when no step is non-finite
and the held-out score is within RESTORED of the reference's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import count
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ... import clip
from ...watch import watch
from ..datasets import mnist1d
from ..experiment import Claim, Context, Result
from ..tasks import plain_mlp
from ..train import fit, single_thread
from ._sequences_training import evaluate

NAME = "exploding"
SUMMARY = "high-gain init + high learning rate explode the gradients; clipping by norm, value and AGC as the fix"
METHODS = {"none": {}, "norm": {"max_norm": 1.0}, "value": {"clip_value": 0.1}, "agc": {"clipping": 0.01}}
RESTORED = 1.5  # a clipped run is restored when finite and its loss is at most RESTORED × the reference's
EXPLODED = 10.0  # the unclipped run exploded when non-finite, or its largest gradient norm is EXPLODED × the reference's


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[float], nn.Module]  # gain -> model
    gain: float  # the high gain
    reference_gain: float  # a healthy gain for the reference run
    reference_lr: float  # and its learning rate
    batches: Callable[[int], tuple[Tensor, Tensor]]
    test: tuple[Tensor, Tensor]
    loss: Callable[[Tensor, Tensor], Tensor]
    lr: float
    steps: int
    baseline: float  # the loss that counts as "learnt nothing" (rows report loss / baseline)


def run(ctx: Context) -> Result:
    cases = [_mlp_case(ctx)]
    rows = []
    bar = ctx.progress.add_task("exploding: case × method", total=len(cases) * (len(METHODS) + 1))
    with single_thread():
        for case in cases:
            rows.append(_train(case, "none", case.reference_gain, case.reference_lr, ctx, reference=True))
            ctx.progress.advance(bar)
            for method in METHODS:
                rows.append(_train(case, method, case.gain, case.lr, ctx))
                ctx.progress.advance(bar)
                ctx.finished(f"{case.name}, gain {case.gain}, clip {method}")
    return Result(rows, [_claim(rows, case) for case in cases], _notes(cases, ctx.quick))


def _mlp_case(ctx: Context) -> Case:
    data = mnist1d()
    generator = torch.Generator().manual_seed(ctx.seed)
    order = [torch.randperm(len(data.y_train), generator=generator) for _ in range(20)]

    def batches(step: int) -> tuple[Tensor, Tensor]:
        epoch, k = divmod(step * 128, len(data.y_train))
        rows = order[epoch % len(order)][k:k + 128]
        return data.x_train[rows], data.y_train[rows]

    def build(gain: float) -> nn.Module:
        return plain_mlp(7, 64, nn.ReLU, gain=gain, out=10, inputs=40)

    return Case("mlp", build, 2.0, math.sqrt(2), 0.1, batches, (data.x_test, data.y_test), F.cross_entropy, lr=0.1,
                steps=300 if ctx.quick else 1500, baseline=math.log(10))


def _train(case: Case, method: str, gain: float, lr: float, ctx: Context, reference: bool = False) -> dict[str, Any]:
    torch.manual_seed(ctx.seed)
    model = case.build(gain)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    bar = ctx.progress.add_task(f"  {case.name}, gain {gain:.2f}, clip {method}", total=case.steps)
    with watch(model, optimizer, activation_every=0, update_every=0, flush_every=case.steps) as run:
        if method != "none":  # attached after watch, so the record holds the raw gradients
            clip(optimizer, method, **METHODS[method], **({"model": model} if method == "agc" else {}))
        nonfinite = fit(model, optimizer, map(case.batches, count()), case.loss, case.steps, check_gradients=True,
                        after_step=lambda step, loss: run.step(loss=loss), progress=(ctx.progress, bar)).nonfinite
    ctx.progress.remove_task(bar)
    norms = np.sqrt(np.nansum(run.history("grad_norm") ** 2, axis=1))  # global norm per step (NaN layers skipped)
    diagnosis = run.diagnose()
    test_loss = evaluate(model, case.test, case.loss)
    return {
        "case": case.name, "init": "reference" if reference else "high gain", "gain": round(gain, 3), "lr": lr,
        "method": method, "relative_loss": test_loss / case.baseline, "accuracy": _accuracy(model, case),
        "nonfinite_steps": nonfinite, "grad_norm_init": float(norms[0]),
        "grad_norm_max": float(np.max(norms[np.isfinite(norms)], initial=0.0)),
        "grad_norm_median": float(np.median(norms)),
        "findings": ", ".join(f"{f.severity} {f.kind}" for f in diagnosis.findings) or "none",
    }


def _accuracy(model: nn.Module, case: Case) -> float | None:
    """Held-out accuracy for the classifier case; None for the regression (adding) case."""
    if case.loss is not F.cross_entropy:
        return None
    with torch.no_grad():
        return (model(case.test[0]).argmax(1) == case.test[1]).float().mean().item()


def _restored(row: dict, reference: dict) -> bool:
    return row["nonfinite_steps"] == 0 and row["relative_loss"] <= RESTORED * reference["relative_loss"]


def _claim(rows: list[dict], case: Case) -> Claim:
    reference = next(r for r in rows if r["case"] == case.name and r["init"] == "reference")
    runs = {r["method"]: r for r in rows if r["case"] == case.name and r["init"] == "high gain"}
    bare = runs.pop("none")
    exploded = bare["nonfinite_steps"] > 0 or bare["grad_norm_max"] > EXPLODED * reference["grad_norm_max"]
    restored = [m for m, r in runs.items() if _restored(r, reference)]

    def score(r: dict) -> str:
        accuracy = f", accuracy {r['accuracy']:.3f}" if r["accuracy"] is not None else ""
        return (f"loss/baseline {r['relative_loss']:.3g}{accuracy}, {r['nonfinite_steps']} non-finite steps, "
                f"max ‖g‖ {r['grad_norm_max']:.3g}")

    measured = (f"{case.name}, gain {case.gain} + SGD lr {case.lr}: no clipping: {score(bare)}; findings: "
                f"{bare['findings']}. Reference (gain {case.reference_gain:.3g}, lr {case.reference_lr}, no clipping): {score(reference)}. "
                + "; ".join(f"clip {m}: {score(r)}" for m, r in runs.items())
                + f". Exploded without clipping (non-finite, or max ‖g‖ > {EXPLODED:g} × reference's): "
                f"{'yes' if exploded else 'no'}. Restored (finite, loss <= {RESTORED} × reference): {restored or 'none'}.")
    if not exploded:
        verdict = "does not hold"
    elif len(restored) == len(runs):
        verdict = "holds"
    elif restored:
        verdict = "holds with conditions"
    else:
        verdict = "does not hold"
    return Claim("High-gain init and a high learning rate explode the gradients of an MLP; clipping (norm, value, "
                 "AGC) restores training", measured, verdict)


def _notes(cases: list[Case], quick: bool) -> list[str]:
    return [
        "mlp: MNIST-1D (4000 train, 1000 test), 7 Linear layers of width 64 with ReLU, weights N(0, gain²/fan_in) "
        "(gain 2 high, √2 = He reference), zero biases, batches of 128; loss/baseline uses ln 10.",
        "SGD with momentum 0.9, steps " + ", ".join(f"{c.name} {c.steps} at lr {c.lr}" for c in cases)
        + f"; clipping settings {METHODS} (gd.clip; AGC skips the final Linear). A step is non-finite when its "
        "loss or a gradient is NaN/inf; it is still taken, as a plain loop would. One thread."
        + (" --quick: fewer steps than the full run." if quick else ""),
        "Deviation: a few epochs on MNIST-1D; the budget shows whether training stays finite and near the "
        "healthy reference. RNNs: `lab clipping` (Pascanu et al. 2013's setting, thresholds swept).",
    ]
