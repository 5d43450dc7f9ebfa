"""How far can any repair go? A plain-torch oracle over fixes and learning rates for the scenarios a repair misses.

    PYTHONPATH=src:. python -m benchmarks.repair_ceiling                     # the default scenarios, ~5 min
    PYTHONPATH=src:. python -m benchmarks.repair_ceiling --scenarios mlp_sgd_tiny_lr_plateau --out /tmp/ceiling

`benchmarks/repair.py` scores a repair against the healthy `reference` of the scenario's data (a different model
and recipe: on MNIST-1D an AdamW 3e-3 3x128 net). This script asks, for a broken scenario, whether *any* simple
repair reaches that bar within the same number of steps: each structural fix below (written here in plain torch;
no gradient_doctor code trains or decides anything) with the scenario's own optimizer at every learning-rate
multiple of LR_MULTIPLES, and with Adam 1e-3 and AdamW 3e-3 (the MNIST-1D reference's own recipe). It is an
oracle: the learning rate and fix are picked with the test metric in hand, which no repair can do. A scenario
whose best configuration stays below the bar cannot be repaired on this benchmark by anything short of changing
the model or its recipe beyond these fixes; one that reaches it only at a learning rate no measurement motivates
shows what the bar asks for.

Results: benchmarks/results/repair-ceiling.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.repair import ACCURACY_SHARE, RESULTS, References, metric, succeeded
from benchmarks.scenarios import SCENARIOS, evaluate, train_step
from benchmarks.scenarios.base import OPTIMIZERS, Setup

#: The test-split scenarios gd.autotrain did not repair on 2026-12-07 16:28 (benchmarks/results/repair-test.md).
DEFAULT = ("mlp_relu_tiny_init_vanishing", "mlp_sigmoid_large_init_saturation", "mlp_he_negative_bias_dead",
           "mlp_momentum_huge_lr_non_finite", "mlp_sgd_tiny_lr_plateau", "cnn1d_sigmoid_large_init_saturation",
           "cnn1d_negative_bias_dead")
#: The fix that removes a scenario's defect and nothing else: with the scenario's own optimizer and learning rate it
#: trains the scenario's healthy twin (same model, same recipe, no defect). Scenarios whose defect is the learning
#: rate have no such fix (which rate a twin would take is a choice) and are not listed.
TWINS = {"mlp_relu_tiny_init_vanishing": "torch default init", "mlp_sigmoid_large_init_saturation": "torch default init",
         "mlp_he_negative_bias_dead": "zero biases", "cnn1d_sigmoid_large_init_saturation": "torch default init",
         "cnn1d_negative_bias_dead": "zero biases", "rnn_relu_sum30_bias-3_sgd_dead": "zero biases"}
#: Multiples of the scenario's own learning rate tried with its own optimizer.
LR_MULTIPLES = (1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0, 1e3, 1e4, 3e4, 1e5, 1e6)
#: Other optimizers tried at their usual rates: (name in OPTIMIZERS, lr).
OTHER_OPTIMIZERS = (("adam", 1e-3), ("adamw", 3e-3))
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
_SATURATING = (nn.Sigmoid, nn.Tanh)


def _zero_biases(model: nn.Module) -> None:
    for name, parameter in model.named_parameters():
        if name.endswith("bias") or ".bias_" in name or name.startswith("bias_"):
            parameter.zero_()


def _he(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                module.bias.zero_()


def _xavier(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                module.bias.zero_()


def _default(model: nn.Module) -> None:
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()


def _relu_he(model: nn.Module) -> None:
    for name, module in list(model.named_modules()):
        if isinstance(module, _SATURATING):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, nn.ReLU())
    _he(model)


#: Structural fixes, in place under torch.no_grad(): name -> function(model).
FIXES: dict[str, Callable[[nn.Module], None]] = {
    "as built": lambda model: None, "torch default init": _default, "zero biases": _zero_biases, "he": _he,
    "xavier": _xavier, "saturating -> relu, he": _relu_he,
}


def _applicable(fix: str, model: nn.Module) -> bool:
    if fix == "saturating -> relu, he":
        return any(isinstance(m, _SATURATING) for m in model.modules())
    if fix in ("he", "xavier"):
        return any(isinstance(m, _WEIGHTED) for m in model.modules())
    return True


def _train(setup: Setup, fix: str, optimizer: str | None, lr: float, steps: int) -> float:
    """The test metric after `steps` plain steps of `setup` with `fix` applied and the optimizer chosen: the
    scenario's own with every learning rate times `lr` (optimizer None), else OPTIMIZERS[optimizer] at `lr`."""
    torch.manual_seed(0)
    with torch.no_grad():
        FIXES[fix](setup.model)
    if optimizer is None:
        opt = setup.optimizer(setup.model.parameters())
        for group in opt.param_groups:
            group["lr"] *= lr
    else:
        opt = OPTIMIZERS[optimizer](setup.model.parameters(), lr=lr)
    setup.model.train()
    for step in range(steps):
        train_step(setup, opt, *setup.batch(step))
    value = metric(setup.task, evaluate(setup))
    return value if value == value else float("inf") if setup.task == "regression" else 0.0


def ceiling(name: str, references: References) -> dict[str, Any]:
    """Every fix x optimizer x learning rate on scenario `name`; the bar, the best configuration and how many pass."""
    scenario = SCENARIOS[name]
    probe = scenario.make()
    reference = references.metric(scenario.reference, scenario.steps)
    trials = []
    for fix in (f for f in FIXES if _applicable(f, probe.model)):
        configs = [(None, m) for m in LR_MULTIPLES] + list(OTHER_OPTIMIZERS)
        for optimizer, lr in configs:
            value = _train(scenario.make(), fix, optimizer, lr, scenario.steps)
            trials.append({"fix": fix, "optimizer": optimizer or "own", "lr": lr, "metric": value,
                           "success": succeeded(probe.task, value, reference)})
    better = max if probe.task == "classification" else min
    best = better(trials, key=lambda t: t["metric"])
    own = [t for t in trials if t["optimizer"] == "own"]
    return {"name": name, "label": scenario.label, "task": probe.task, "variant": scenario.variant,
            "steps": scenario.steps, "reference": reference, "reference_name": scenario.reference,
            "best": best, "best_own_optimizer": better(own, key=lambda t: t["metric"]),
            "best_own_lr": better((t for t in own if t["lr"] == 1.0), key=lambda t: t["metric"]),
            "passing": [t for t in trials if t["success"]], "trials": len(trials),
            "twin": next((t for t in own if t["fix"] == TWINS.get(name) and t["lr"] == 1.0), None)}


def _config(trial: dict[str, Any]) -> str:
    rate = f"lr x{trial['lr']:g}" if trial["optimizer"] == "own" else f"{trial['optimizer']} {trial['lr']:g}"
    return f"{trial['metric']:.3f} ({trial['fix']}, {rate})"


def to_markdown(meta: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"# Repair ceiling: {len(rows)} scenarios", "",
             f"`{meta['command']}` — {meta['date']}, {meta['machine']}, torch {meta['torch']}, 1 torch thread, "
             f"{meta['seconds']:.0f} s.", "",
             f"Bar: {ACCURACY_SHARE:.0%} of the reference's accuracy (or 1.1x its loss) after the same steps. Fixes: "
             + ", ".join(FIXES) + f"; the scenario's own optimizer at learning rate x {list(LR_MULTIPLES)}, and "
             + ", ".join(f"{o} {lr:g}" for o, lr in OTHER_OPTIMIZERS) + ". Plain torch; an oracle (picked on the "
             "test metric).", "",
             "Healthy twin: the same model and recipe with only its defect removed (`TWINS`; none for a learning-rate "
             "defect).", "",
             "| scenario | bar (reference) | healthy twin | best, own optimizer and learning rate | best, own optimizer "
             "| best of all | configurations at the bar |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        bar = ACCURACY_SHARE * r["reference"] if r["task"] == "classification" else 1.1 * r["reference"]
        passing = ", ".join(_config(t) for t in r["passing"][:4]) + (" ..." if len(r["passing"]) > 4 else "")
        twin = _config(r["twin"]) if r.get("twin") else "—"
        lines.append(f"| {r['name']} | {bar:.3f} ({r['reference_name']} {r['reference']:.3f}) | {twin} | "
                     f"{_config(r['best_own_lr'])} | {_config(r['best_own_optimizer'])} | {_config(r['best'])} | "
                     f"{len(r['passing'])}/{r['trials']}{': ' + passing if passing else ''} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(DEFAULT), help="scenario names (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for repair-ceiling.{json,md}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}")
    torch.set_num_threads(1)
    start = time.perf_counter()
    references = References()
    rows = []
    for name in args.scenarios:
        rows.append(ceiling(name, references))
        print(f"{name}: best {_config(rows[-1]['best'])}, {len(rows[-1]['passing'])} at the bar", flush=True)
    meta = {"command": "python -m benchmarks.repair_ceiling " + " ".join(sys.argv[1:] if argv is None else argv),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
            "torch": torch.__version__, "seconds": time.perf_counter() - start}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "repair-ceiling.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out / "repair-ceiling.md").write_text(to_markdown(meta, rows))
    print(f"wrote {args.out / 'repair-ceiling.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
