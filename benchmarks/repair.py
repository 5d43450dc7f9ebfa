"""Repair benchmark: every broken scenario trained untreated and `gd.treat`-ed for the same steps, against its
healthy reference.

    python -m benchmarks.repair                      # test split -> benchmarks/results/repair-test.{json,md}
    python -m benchmarks.repair --split dev --out /tmp/r
    python -m benchmarks.repair --quick              # the QUICK subset (what tests/benchmarks/test_repair.py runs)
    python -m benchmarks.repair --scenarios mlp_sigmoid_deep_vanishing

    >>> row = repair(SCENARIOS["mlp_sigmoid_deep_vanishing"], References())
    >>> row["applied"], row["untreated"], row["treated"], row["reference"], row["success"]
    (['he_init', 'swap_activation:relu'], 0.10, 0.95, 0.97, True)

Per broken scenario (label != "healthy"), in one process, back to back, torch single-threaded (steadier timings):

0. **reference**: the scenario's healthy `reference` trained for the broken scenario's steps (the same budget as
   both arms) and evaluated (once per reference and budget; it also warms the process up before anything is timed).
1. **untreated**: `make()`, `WARMUP_STEPS` untimed steps on a copy, then `steps` plain steps (`base.train`),
   `evaluate`; the training is timed.
2. **treated**: `make()` again (same seed, same init), then what a user of the library does. `gd.treat(model,
   inputs=first batch, targets=..., loss_fn=...)` runs its own checkup at init and treats what it finds (the
   diagnosis is that checkup). The optimizer is the setup's factory over the untreated model passed through
   `Treatment.rebuild_optimizer` (the documented way: it matches groups by name and attaches the clipping remedies of
   `Treatment.training`). The user follows the advice: the first learning-rate advice of `Treatment.advice` scales
   every group's lr (`increase_lr` x10, `decrease_lr` /10); other advice (`decrease_weight_decay`) is reported, not
   followed. Training starts under `gd.watch`: problems that only show in training (a plateau, non-finite values,
   gradients growing over the steps) are invisible to a checkup at init. After the first `probe_steps(steps)` steps
   the watched run is diagnosed: healthy, the watch ends and training goes on to `steps`; otherwise the user stops,
   treats the treated model *as it was before those steps* again for the watched run's findings (`gd.treat(model,
   diagnosis, ...)`, new optimizer, learning-rate advice compounding on the previous round's), and watches again:
   the last of at most ROUNDS watched rounds trains on to `steps` whatever its diagnosis. Clipping attached in an
   earlier round stays attached. A plateau's advice comes with its size (evidence `lr_factor`); other learning-rate
   advice is x10 or /10 per round. The timed part is all of it: checkups, treat, the watched steps (wasted when
   restarted), the training. `evaluate` at the end.

Success: the treated model reaches `ACCURACY_SHARE` of the reference's test accuracy (classification) or a test loss
at most `LOSS_FACTOR` times the reference's (regression). Time ratio: (treatment + treated training) / untreated
training. A scenario that raises is a failure with its error shown. Every training arm starts from
torch.manual_seed(0), so the only difference between the arms is the treatment.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

import gradient_doctor as gd
from benchmarks.scenarios import SCENARIOS, Scenario, Setup, evaluate, select, train_step
from benchmarks.scenarios.checks import replica

#: Success: treated accuracy >= ACCURACY_SHARE x the reference's, or treated loss <= LOSS_FACTOR x the reference's.
ACCURACY_SHARE = 0.9
LOSS_FACTOR = 1.1
#: Learning-rate advice, followed mechanically: the factor each group's lr is multiplied by.
LR_ADVICE = {"increase_lr": 10.0, "decrease_lr": 0.1}
#: Broken scenarios whose treatment is clear; run by `--quick` and by tests/benchmarks/test_repair.py.
QUICK = ("mlp_sigmoid_deep_vanishing", "mlp_relu_negative_bias_dead", "mlp_momentum_high_lr_exploding",
         "mlp_tanh_large_init_saturation")
#: Untimed steps on a copy of the untreated setup before its timed training: the first steps of a process (or of a
#: new architecture) pay one-off costs (measured: a first 200-step run 5.8 s, the next ones 2.0 s and 2.2 s).
WARMUP_STEPS = 5
#: Watched rounds at most: after each unhealthy diagnosis of the first `probe_steps` steps the user re-treats and
#: restarts (learning-rate advice compounds: a learning rate 100x too large takes two rounds of /10); the last
#: round's training goes on to the full budget whatever its diagnosis.
ROUNDS = 3
RESULTS = Path(__file__).parent / "results"


def probe_steps(steps: int) -> int:
    """Steps watched at the start of the treated training before its diagnosis: a tenth of the budget, at least 30.
    Measured on a 2x64 ReLU MLP on digits: over 20 steps the loss of Adam lr 1e-4 or SGD lr 1e-2 (which train) was
    still within its noise, a plateau warning with `decrease_lr`; over 30 and 50 steps no finding; lr 1e-5 Adam and
    1e-3 SGD gave the plateau warning with `increase_lr` at 20, 30 and 50 steps. The cadences of the watch give
    every series >= 3 points in 30 steps.

    >>> probe_steps(200), probe_steps(1000)
    (30, 100)
    """
    return max(30, steps // 10)


def metric(task: str, evaluation: dict[str, float]) -> float:
    """The scenario's score: test accuracy for classification, test loss for regression.

    >>> metric("classification", {"loss": 0.4, "accuracy": 0.9}), metric("regression", {"loss": 0.2})
    (0.9, 0.2)
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression'; got {task!r}")
    return evaluation["accuracy" if task == "classification" else "loss"]


def succeeded(task: str, treated: float, reference: float) -> bool:
    """Whether the treated metric is within reach of the reference's (a NaN metric never is).

    >>> succeeded("classification", 0.88, 0.95), succeeded("regression", 0.12, 0.1)
    (True, False)
    """
    if task == "classification":
        return treated >= ACCURACY_SHARE * reference
    if task == "regression":
        return treated <= LOSS_FACTOR * reference
    raise ValueError(f"task must be 'classification' or 'regression'; got {task!r}")


def gain(task: str, untreated: float, treated: float) -> float:
    """Improvement from the treatment, positive when better: accuracy points gained, or test loss removed.

    >>> gain("classification", 0.1, 0.9), gain("regression", 0.5, 0.2)
    (0.8, 0.3)
    """
    return treated - untreated if task == "classification" else untreated - treated


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Success rate (overall and per label), mean gain per task, time ratios, and the scenarios treat left alone
    or that raised. A row needs "name", "label", "task", "success"; "gain", "time_ratio", "nothing_applied",
    "error" are read when present (an errored row is a failure and has no gain or time ratio).

    >>> aggregate([{"name": "a", "label": "vanishing", "task": "classification", "success": True, "gain": 0.8,
    ...             "time_ratio": 1.1, "nothing_applied": False, "error": None}])["success_rate"]
    1.0
    """
    def rate(subset: list[dict[str, Any]]) -> dict[str, Any]:
        wins = sum(bool(r["success"]) for r in subset)
        return {"n": len(subset), "successes": wins, "rate": wins / len(subset) if subset else math.nan}

    gains: dict[str, dict[str, Any]] = {}
    for task in sorted({r["task"] for r in rows}):
        values = [r["gain"] for r in rows if r["task"] == task and r.get("gain") is not None]
        finite = [g for g in values if math.isfinite(g)]
        gains[task] = {"mean": statistics.fmean(finite) if finite else math.nan, "n": len(finite),
                       "not_finite": len(values) - len(finite)}
    ratios = [r["time_ratio"] for r in rows if r.get("time_ratio") is not None and math.isfinite(r["time_ratio"])]
    overall = rate(list(rows))
    return {
        "n": overall["n"], "successes": overall["successes"], "success_rate": overall["rate"],
        "by_label": {label: rate([r for r in rows if r["label"] == label])
                     for label in sorted({r["label"] for r in rows})},
        "mean_gain": gains,
        "time_ratio_median": statistics.median(ratios) if ratios else math.nan,
        "time_ratio_mean": statistics.fmean(ratios) if ratios else math.nan,
        "nothing_applied": [r["name"] for r in rows if r.get("nothing_applied")],
        "errors": {r["name"]: r["error"] for r in rows if r.get("error")},
    }


class References:
    """Test metrics of healthy reference scenarios, each trained once per step budget: the broken scenario's, so
    that untreated, treated and reference all get the same number of steps.

    >>> refs = References(); refs.metric("mlp_relu_healthy", steps=150)
    0.96
    """

    def __init__(self) -> None:
        self._metrics: dict[tuple[str, int], float] = {}

    def metric(self, name: str, steps: int) -> float:
        if (name, steps) not in self._metrics:
            setup = SCENARIOS[name].make()
            plain_arm(setup, steps)
            self._metrics[name, steps] = metric(setup.task, evaluate(setup))
        return self._metrics[name, steps]


def _train(setup: Setup, steps: Iterable[int], optimizer: torch.optim.Optimizer,
           each: Callable[[torch.Tensor], object] = lambda loss: None) -> float:
    """Seconds taken by plain training steps on the batches of `steps` (`each(loss)` after each step)."""
    setup.model.train()
    start = time.perf_counter()
    for step in steps:
        each(train_step(setup, optimizer, *setup.batch(step)))
    return time.perf_counter() - start


def plain_arm(setup: Setup, steps: int) -> float:
    """Train `setup.model` untreated for `steps` steps from torch.manual_seed(0); returns the seconds taken.

    >>> plain_arm(SCENARIOS["mlp_sigmoid_deep_vanishing"].make(), 150)      # trains the model in place
    1.87
    """
    torch.manual_seed(0)
    return _train(setup, range(steps), setup.optimizer(setup.model.parameters()))


def follow_advice(optimizer: torch.optim.Optimizer, advice: Iterable[str],
                  findings: Iterable[gd.Finding] = ()) -> tuple[str | None, float]:
    """Scale every group's lr by the first learning-rate advice; returns (advice followed, factor). The factor is
    the `lr_factor` evidence of the first finding that ranks that advice (a plateau says how far to go), else
    LR_ADVICE's.

    >>> follow_advice(optimizer, ["increase_lr"])
    ('increase_lr', 10.0)
    """
    followed = next((a for a in advice if a in LR_ADVICE), None)
    sized = next((f.evidence["lr_factor"] for f in findings
                  if followed in f.remedies and f.evidence.get("lr_factor") is not None), None)
    factor = (sized if followed == "increase_lr" and sized else LR_ADVICE[followed]) if followed else 1.0
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
    return followed, factor


def _treat(model: torch.nn.Module, setup: Setup, diagnosis: gd.Diagnosis | None = None
           ) -> tuple[gd.Treatment, torch.optim.Optimizer, str | None, float]:
    """`gd.treat` on the first batch, the optimizer to train the treated model with (the setup's, over `model`,
    rebuilt by the treatment: clipping attached) and the learning-rate advice followed on it."""
    inputs, targets = setup.batch(0)
    treatment = gd.treat(model, diagnosis, inputs=inputs, targets=targets, loss_fn=setup.loss_fn)
    optimizer = treatment.rebuild_optimizer(setup.optimizer(model.parameters()))
    findings = diagnosis.findings if diagnosis is not None else treatment.before.findings
    return (treatment, optimizer, *follow_advice(optimizer, treatment.advice, findings))


def treated_arm(setup: Setup, steps: int) -> dict[str, Any]:
    """Treat `setup.model` and train the treated model for `steps` steps from torch.manual_seed(0), in place of
    `setup.model`; returns what was done and the seconds taken (see the module docstring).

    >>> treated_arm(SCENARIOS["mlp_adam_tiny_lr_plateau"].make(), 150)["advice_followed"]
    'increase_lr x1000'
    """
    start = time.perf_counter()
    treatment, optimizer, followed, factor = _treat(setup.model, setup)
    findings, applied, clipping = list(treatment.before.findings), list(treatment.applied), list(treatment.training)
    followed_all, lr_scale, watched_kinds = ([f"{followed} x{factor:g}"] if followed else []), factor, []
    for watched_round in range(1, ROUNDS + 1):
        untrained, setup.model = copy.deepcopy(treatment.model), treatment.model
        torch.manual_seed(0)
        with gd.watch(setup.model, optimizer, every=1, detail_every=10, update_every=5, activation_every=10) as run:
            _train(setup, range(probe_steps(steps)), optimizer, lambda loss: run.step(loss=loss))
            watched = run.diagnose()
        watched_kinds.append(sorted({f"{f.kind} ({f.severity})" for f in watched.findings if f.severity != "info"}))
        if watched.healthy or watched_round == ROUNDS:  # the last round trains on whatever its diagnosis
            resume = probe_steps(steps)
            break
        # unhealthy: restart from the treated, untrained model, treated again for what the watch found; the
        # clipping of earlier rounds stays attached and learning-rate advice compounds, as for a user
        findings += watched.findings
        lrs = [group["lr"] for group in optimizer.param_groups]
        carried = gd.Diagnosis(list(watched.findings) + [f for f in findings if _clipping(f) and f not in
                                                          watched.findings])
        treatment, optimizer, followed, factor = _treat(untrained, setup, carried)
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr * factor
        lr_scale *= factor
        applied += treatment.applied
        clipping += [name for name in treatment.training if name not in clipping]
        if followed:
            followed_all.append(f"{followed} x{factor:g}")
        setup.model, resume = treatment.model, 0
        torch.manual_seed(0)
    _train(setup, range(resume, steps), optimizer)
    return {
        "findings": sorted({f"{f.kind} ({f.severity})" for f in findings if f.severity != "info"}),
        "watched": watched_kinds,
        "rounds": watched_round,
        "applied": applied,
        "clipping": clipping,
        "advice": treatment.advice,
        "advice_followed": ", ".join(followed_all) or None,
        "lr_factor": lr_scale,
        "rejected": [f"{name}: {reason}" for name, reason in treatment.rejected],
        "nothing_applied": not applied and not clipping and not followed_all,
        "treated_seconds": time.perf_counter() - start,
    }


def _clipping(finding: gd.Finding) -> bool:
    """Whether a warning/critical finding ranks a clipping remedy (attached to the optimizer, not verifiable)."""
    return finding.severity != "info" and any(name.startswith(("clip_", "adaptive_clip")) for name in finding.remedies)


def repair(scenario: Scenario, references: References) -> dict[str, Any]:
    """One broken scenario untreated, treated and against its reference; errors are recorded, never raised.

    >>> repair(SCENARIOS["mlp_sigmoid_deep_vanishing"], References())["success"]
    True
    """
    row: dict[str, Any] = {"name": scenario.name, "family": scenario.family, "label": scenario.label,
                           "split": scenario.split, "variant": scenario.variant, "steps": scenario.steps,
                           "task": None, "success": False, "error": None}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            row["reference"] = references.metric(scenario.reference, scenario.steps)
            untreated = scenario.make()
            row["task"] = untreated.task
            plain_arm(replica(untreated), WARMUP_STEPS)
            row["untreated_seconds"] = plain_arm(untreated, scenario.steps)
            row["untreated"] = metric(untreated.task, evaluate(untreated))
            treated = scenario.make()
            row.update(treated_arm(treated, scenario.steps))
            row["treated"] = metric(treated.task, evaluate(treated))
        row["warnings"] = sorted({f"{w.category.__name__}: {w.message}"[:200] for w in caught})
        row["success"] = succeeded(row["task"], row["treated"], row["reference"])
        row["gain"] = gain(row["task"], row["untreated"], row["treated"])
        row["time_ratio"] = row["treated_seconds"] / row["untreated_seconds"]
    except Exception as err:  # a scenario that raises is a failure, shown with its error
        row["error"] = f"{type(err).__name__}: {err}"
        row["traceback"] = traceback.format_exc(limit=-3)
    if row["task"] is None:
        row["task"] = "unknown"
    return row


def chosen(split: str, quick: bool, names: Sequence[str] | None) -> list[Scenario]:
    """The broken scenarios to run: the named ones, else QUICK, else those of `split` ("test", "dev" or "all").

    >>> chosen("test", quick=True, names=None)[0].name          # named healthy or unknown scenarios: ValueError
    'mlp_sigmoid_deep_vanishing'
    """
    if names:
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenarios {unknown}; known: {sorted(SCENARIOS)}")
        picked = [SCENARIOS[n] for n in names]
    elif quick:
        picked = [SCENARIOS[n] for n in QUICK]
    elif split == "all":
        picked = list(SCENARIOS.values())
    else:
        picked = select(split=split)
    healthy = [s.name for s in picked if s.label == "healthy"]
    if names and healthy:
        raise ValueError(f"healthy scenarios have nothing to repair: {healthy}")
    return [s for s in picked if s.label != "healthy"]


def run_all(scenarios: Sequence[Scenario], progress: Callable[[int, str], None] = lambda done, name: None
            ) -> list[dict]:
    """`repair` of each scenario, single-threaded torch, references shared; `progress(done, name)` before each.

    >>> rows = run_all(chosen("test", True, None), lambda done, name: print(done, name))
    0 mlp_sigmoid_deep_vanishing
    ...
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        references = References()
        rows = []
        for done, scenario in enumerate(scenarios):
            progress(done, scenario.name)
            rows.append(repair(scenario, references))
        return rows
    finally:
        torch.set_num_threads(threads)


def _number(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def to_markdown(meta: dict[str, Any], rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The report: how it was run, the per-scenario table, the aggregate, what treat left alone, the errors.

    >>> print(to_markdown(meta, rows, aggregate(rows)))
    # Repair benchmark: quick
    ...
    """
    lines = [f"# Repair benchmark: {meta['selection']}", "",
             f"`{meta['command']}` — {meta['date']}, {meta['machine']}, torch {meta['torch']}, "
             f"{meta['threads']} torch thread(s), {meta['seconds']:.1f} s in all.", "",
             f"Success: treated >= {ACCURACY_SHARE:.0%} of the reference's test accuracy, or test loss <= "
             f"{LOSS_FACTOR}x the reference's. Metric: test accuracy (classification) or test loss (regression). "
             "Time ratio: (treatment + treated training) / untreated training. Advice followed: learning-rate "
             "advice only (increase_lr by the plateau's lr_factor, else x10; decrease_lr /10). The treated training "
             f"is watched for its first max(30, steps/10) steps; a finding there restarts it from the treated init, "
             f"re-treated for it (at most {ROUNDS} watched rounds; 'found by the watch' lists each round's findings, "
             "→ between rounds).", "",
             "| scenario | label | found by the watch | remedies applied | clipping | advice followed | metric | untreated | "
             "treated | reference | success | time ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['name']} | {r['label']} | error | | | | | | | | no | |")
            continue
        lines.append(
            f"| {r['name']} | {r['label']} | {' → '.join(', '.join(kinds) or 'healthy' for kinds in r['watched'])}"
            f" | {', '.join(r['applied']) or '—'} | "
            f"{', '.join(r['clipping']) or '—'} | {r['advice_followed'] or '—'} | "
            f"{'accuracy' if r['task'] == 'classification' else 'loss'} | {_number(r['untreated'])} | "
            f"{_number(r['treated'])} | {_number(r['reference'])} | {'yes' if r['success'] else 'no'} | "
            f"{_number(r['time_ratio'])} |")
    gains = "; ".join(f"{task}: {_number(g['mean'])} over {g['n']}"
                      + (f" ({g['not_finite']} not finite, left out)" if g["not_finite"] else "")
                      for task, g in summary["mean_gain"].items())
    lines += ["", "## Aggregate", "",
              f"- success rate: {summary['successes']}/{summary['n']} = {_number(summary['success_rate'])}",
              "- by label: " + ", ".join(f"{label} {v['successes']}/{v['n']}"
                                        for label, v in summary["by_label"].items()),
              f"- mean gain (accuracy points gained / test loss removed): {gains or '—'}",
              f"- time ratio: median {_number(summary['time_ratio_median'])}, "
              f"mean {_number(summary['time_ratio_mean'])}",
              f"- treat applied nothing (no remedy, no clipping, no advice followed): "
              f"{', '.join(summary['nothing_applied']) or 'none'}"]
    failures = [r for r in rows if not r["success"] and not r.get("error")]
    if failures:
        lines += ["", "## Failures", ""]
        for r in failures:
            lines.append(f"- **{r['name']}** ({r['label']}): findings {', '.join(r['findings']) or 'none'}; "
                         f"applied {', '.join(r['applied']) or 'nothing'}; advice {', '.join(r['advice']) or 'none'}; "
                         f"rejected: {'; '.join(r['rejected']) or 'none'}")
    if summary["errors"]:
        lines += ["", "## Errors", ""] + [f"- **{name}**: {error}" for name, error in summary["errors"].items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark as the command line says; print the report, write repair-<selection>.{json,md} to --out.

    >>> main(["--quick", "--out", "/tmp/r"])          # writes /tmp/r/repair-quick.json and .md
    0
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.repair", description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("test", "dev", "all"), default="test")
    parser.add_argument("--quick", action="store_true", help=f"only the QUICK subset {QUICK}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for repair-<selection>.json/.md")
    parser.add_argument("--scenarios", nargs="+", metavar="NAME", help="these broken scenarios only")
    args = parser.parse_args(argv)
    scenarios = chosen(args.split, args.quick, args.scenarios)
    selection = "selected" if args.scenarios else "quick" if args.quick else args.split

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task("repair", total=len(scenarios))
        rows = run_all(scenarios, lambda done, name: bar.update(task, completed=done, description=f"repair {name}"))
        bar.update(task, completed=len(scenarios), description="repair")
    meta = {"selection": selection, "command": "python -m benchmarks.repair " + " ".join(sys.argv[1:] if argv is None
                                                                                          else argv),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "torch": torch.__version__, "threads": 1, "seconds": time.perf_counter() - start}
    summary = aggregate(rows)
    markdown = to_markdown(meta, rows, summary)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    from gradient_doctor.diagnose.finding import json_safe

    (args.out / f"repair-{selection}.json").write_text(json.dumps(json_safe({**meta, "aggregate": summary,
                                                                              "rows": rows}), indent=1))
    (args.out / f"repair-{selection}.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
