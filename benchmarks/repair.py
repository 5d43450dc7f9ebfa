"""Repair benchmark: every broken scenario trained untreated, by `gd.autotrain`, and by the same loop with two
baseline policies (a random repair; AUTOTRAINER's problem -> solution table), against its healthy reference; every
healthy scenario trained plainly and by `gd.autotrain` (a repair tool must not harm what works).

    python -m benchmarks.repair                      # test split -> benchmarks/results/repair-test.{json,md}
    python -m benchmarks.repair --split dev --out /tmp/r
    python -m benchmarks.repair --quick              # the QUICK subset (what tests/benchmarks/test_repair.py runs)
    python -m benchmarks.repair --scenarios mlp_sigmoid_deep_vanishing

    >>> row = repair(SCENARIOS["mlp_sigmoid_deep_vanishing"], References())
    >>> row["arms"]["autotrain"]["metric"], row["reference"], row["arms"]["autotrain"]["success"]
    (0.95, 0.97, True)

Per broken scenario (label != "healthy"), in one process, back to back, torch single-threaded (steadier timings):

0. **reference**: the scenario's healthy `reference` trained for the broken scenario's steps and evaluated (once
   per reference and budget; it also warms the process up before anything is timed).
1. **untreated**: `make()`, `WARMUP_STEPS` untimed steps on a copy, then `steps` plain steps (`base.train`),
   `evaluate`; the training is timed.
2. **autotrain**: `make()` again (same seed, same init), then `gd.autotrain(model, optimizer, batches, loss_fn,
   steps)` — the library's own loop (checkup and treat at init, watched training with the guard, checks, in-place
   adjustments, restarts; see `gradient_doctor/autotrain/loop.py`); everything it does is timed.
3. **random** and **autotrainer**: the same loop (`train_rounds`) with the policies of `benchmarks/repair_baselines.py`:
   they act when gradient-doctor's would (same trigger, same number of rounds) but choose the repair at random, or
   by AUTOTRAINER's table.

Per healthy scenario: plain training and `gd.autotrain` for the scenario's steps; the metric difference and the
guard's interventions are reported (accepted: within 0.01, no intervention).

Success: the arm's model reaches `ACCURACY_SHARE` of the reference's test accuracy (classification) or a test loss
at most `LOSS_FACTOR` times the reference's (regression). Time ratio: the arm's seconds / the untreated training's.
A scenario that raises is a failure with its error shown. Every training arm starts from torch.manual_seed(0).

Timing: the untreated training and every arm are timed `TIMING_REPEATS` times, interleaved (untreated, arm, arm, ...,
untreated, arm, ...), each from a fresh `make()`; an arm's time ratio is the median of its per-repeat ratios, and the
lowest and highest are kept (`time_ratios`). The repeats train the same models (every arm is seeded), so the metric
is the first run's; a repeat whose metric differs is flagged (`nondeterministic`).
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import gradient_doctor as gd
from benchmarks.repair_baselines import AutoTrainerPolicy, RandomPolicy
from benchmarks.scenarios import SCENARIOS, Scenario, Setup, evaluate, select, train_step
from benchmarks.scenarios.checks import replica
from gradient_doctor.autotrain.loop import train_rounds

#: Success: an arm's accuracy >= ACCURACY_SHARE x the reference's, or its loss <= LOSS_FACTOR x the reference's.
ACCURACY_SHARE = 0.9
LOSS_FACTOR = 1.1
#: Broken scenarios whose repair is clear; run by `--quick` and by tests/benchmarks/test_repair.py.
QUICK = ("mlp_sigmoid_deep_vanishing", "mlp_relu_negative_bias_dead", "mlp_momentum_high_lr_exploding",
         "mlp_tanh_large_init_saturation")
#: Untimed steps on a copy of the untreated setup before its timed training: the first steps of a process (or of a
#: new architecture) pay one-off costs (measured: a first 200-step run 5.8 s, the next ones 2.0 s and 2.2 s).
WARMUP_STEPS = 5
#: Times each training is timed, interleaved with the others of its scenario (one timing of a sub-second run on these
#: machines is noise: one arm's ratio measured 2.08 in one run and 1.00 in the next).
TIMING_REPEATS = 3
#: Restarts at most, for every arm (gd.autotrain's max_rounds).
ROUNDS = 3
#: The arms that repair, by name: the policy each runs the autotrain loop with (None: gradient-doctor's own).
ARMS = {"autotrain": lambda: None, "random": lambda: RandomPolicy(seed=0), "autotrainer": AutoTrainerPolicy}
#: Healthy runs trained by gd.autotrain must end within this of plain training's metric.
HARMLESS = 0.01
RESULTS = Path(__file__).parent / "results"


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
    """Success rate (overall and per label), mean gain per task, time ratios, and the scenarios the arm left alone
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
        "nondeterministic": [r["name"] for r in rows if r.get("nondeterministic")],
    }


class References:
    """Test metrics of healthy reference scenarios, each trained once per step budget: the broken scenario's, so
    that every arm and the reference get the same number of steps.

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


def plain_arm(setup: Setup, steps: int) -> float:
    """Train `setup.model` untreated for `steps` steps from torch.manual_seed(0); returns the seconds taken.

    >>> plain_arm(SCENARIOS["mlp_sigmoid_deep_vanishing"].make(), 150)      # trains the model in place
    1.87
    """
    torch.manual_seed(0)
    optimizer = setup.optimizer(setup.model.parameters())
    setup.model.train()
    start = time.perf_counter()
    for step in range(steps):
        train_step(setup, optimizer, *setup.batch(step))
    return time.perf_counter() - start


class StepBatches:
    """The setup's batches of steps 0, 1, ..., steps - 1 at each iteration: what `plain_arm` trains on, as a
    re-iterable for gd.autotrain (a restart starts again at step 0's batch)."""

    def __init__(self, setup: Setup, steps: int):
        self.setup, self.steps = setup, steps

    def __iter__(self):
        return (self.setup.batch(step) for step in range(self.steps))


def autotrain_arm(setup: Setup, steps: int, policy: Any = None) -> dict[str, Any]:
    """`gd.autotrain` (or the same loop with a baseline `policy`) on `setup`, from torch.manual_seed(0); the trained
    model replaces `setup.model`. Returns what was done and the seconds taken (all of it).

    >>> autotrain_arm(SCENARIOS["mlp_adam_tiny_lr_plateau"].make(), 150)["interventions"]
    ['step 29: lr scaled (factor 1e+03, ...)']
    """
    loss_fn = (lambda output, targets: setup.loss_fn(output.float(), targets))
    step_fn = None
    if setup.autocast is not None:  # AMP scenarios: the forward under CPU autocast, through step_fn
        def step_fn(model, batch):
            inputs, targets = batch
            with torch.autocast("cpu", dtype=setup.autocast):
                output = model(inputs)
            return setup.loss_fn(output.float(), targets)
    torch.manual_seed(0)
    optimizer = setup.optimizer(setup.model.parameters())
    start = time.perf_counter()
    if policy is None:
        result = gd.autotrain(setup.model, optimizer, StepBatches(setup, steps), loss_fn, steps,
                              max_rounds=ROUNDS, step_fn=step_fn)
    else:
        result = train_rounds(setup.model, optimizer, StepBatches(setup, steps), loss_fn, steps, log_dir=None,
                              max_rounds=ROUNDS, step_fn=step_fn, policy=policy)
    seconds = time.perf_counter() - start
    setup.model = result.model
    rounds = result.rounds
    return {
        "rounds": [str(r) for r in rounds],
        "restarts": sum(r.action == "restart" for r in rounds[1:]),
        "applied": [name for r in rounds for name in r.applied],
        "clipping": [name for r in rounds for name in r.clipping],
        "lr_factor": math.prod(r.lr_factor for r in rounds),
        "interventions": [str(i) for i in result.interventions],
        "guard_actions": sum(i.kind in ("skipped_update", "clipped_spike", "rolled_back")
                             for i in result.interventions),
        "nothing_applied": all(r.action == "go_on" for r in rounds) and not result.interventions,
        "healthy_at_end": result.healthy,
        "seconds": seconds,
    }


def repair(scenario: Scenario, references: References, arms: Sequence[str] = tuple(ARMS),
           repeats: int = TIMING_REPEATS) -> dict[str, Any]:
    """One broken scenario untreated and by every arm, against its reference, timed `repeats` times interleaved;
    errors are recorded, never raised.

    >>> repair(SCENARIOS["mlp_sigmoid_deep_vanishing"], References())["arms"]["autotrain"]["success"]
    True
    """
    row: dict[str, Any] = {"name": scenario.name, "family": scenario.family, "label": scenario.label,
                           "split": scenario.split, "variant": scenario.variant, "steps": scenario.steps,
                           "task": None, "arms": {}, "error": None}
    try:
        row["reference"] = references.metric(scenario.reference, scenario.steps)
        untreated = scenario.make()
        row["task"] = untreated.task
        plain_arm(replica(untreated), WARMUP_STEPS)
        row["untreated_seconds"] = plain_arm(untreated, scenario.steps)
        row["untreated"] = metric(untreated.task, evaluate(untreated))
    except Exception as err:  # a scenario that raises is a failure of every arm, shown with its error
        row["error"] = f"{type(err).__name__}: {err}"
        row["traceback"] = traceback.format_exc(limit=-3)
        row["task"] = row["task"] or "unknown"
        return row
    for arm in arms:
        row["arms"][arm] = _arm(scenario, row, arm)
    plain_seconds = [row["untreated_seconds"]]
    for _ in range(repeats - 1):
        plain_seconds.append(_plain_seconds(scenario))
        for arm, out in row["arms"].items():
            if out.get("error") is None:
                setup = scenario.make()
                seconds = autotrain_arm(setup, scenario.steps, ARMS[arm]())["seconds"]
                _add_timing(out, seconds / plain_seconds[-1], metric(row["task"], evaluate(setup)) == out["metric"])
    row["untreated_seconds"] = statistics.median(plain_seconds)
    return row


def _arm(scenario: Scenario, row: dict[str, Any], arm: str) -> dict[str, Any]:
    out: dict[str, Any] = {"success": False, "error": None}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            setup = scenario.make()
            out.update(autotrain_arm(setup, scenario.steps, ARMS[arm]()))
            out["metric"] = metric(setup.task, evaluate(setup))
        out["warnings"] = sorted({f"{w.category.__name__}: {w.message}"[:200] for w in caught})
        out["success"] = succeeded(row["task"], out["metric"], row["reference"])
        out["gain"] = gain(row["task"], row["untreated"], out["metric"])
        out["time_ratio"] = out["seconds"] / row["untreated_seconds"]
    except Exception as err:
        out["error"] = f"{type(err).__name__}: {err}"
        out["traceback"] = traceback.format_exc(limit=-3)
    return out


def _plain_seconds(scenario: Scenario) -> float:
    """A fresh untreated training's seconds, warmed up as the first one was."""
    setup = scenario.make()
    plain_arm(replica(setup), WARMUP_STEPS)
    return plain_arm(setup, scenario.steps)


def _add_timing(out: dict[str, Any], ratio: float, same_metric: bool) -> None:
    """One more time ratio of an arm (`out`): `time_ratio` becomes the median of them all, `time_ratios` their lowest
    and highest; a repeat that trained to another metric flags the arm `nondeterministic`.

    >>> out = {"time_ratio": 1.5}; _add_timing(out, 1.1, True); _add_timing(out, 1.2, True); out["time_ratio"]
    1.2
    """
    ratios = out.setdefault("all_time_ratios", [out["time_ratio"]])
    ratios.append(ratio)
    out["time_ratio"] = statistics.median(ratios)
    out["time_ratios"] = [min(ratios), max(ratios)]
    if not same_metric:
        out["nondeterministic"] = True


def harmless(scenario: Scenario, repeats: int = TIMING_REPEATS) -> dict[str, Any]:
    """A healthy scenario trained plainly and by gd.autotrain: the metric difference, the guard's actions, the
    time ratio (timed `repeats` times, interleaved; errors recorded, never raised).

    >>> harmless(SCENARIOS["mlp_relu_healthy"])["difference"]
    0.0
    """
    row: dict[str, Any] = {"name": scenario.name, "family": scenario.family, "steps": scenario.steps, "error": None}
    try:
        plain = scenario.make()
        plain_arm(replica(plain), WARMUP_STEPS)
        seconds = plain_arm(plain, scenario.steps)
        row["plain"] = metric(plain.task, evaluate(plain))
        auto = scenario.make()
        done = autotrain_arm(auto, scenario.steps)
        row["autotrain"] = metric(auto.task, evaluate(auto))
        row["task"] = plain.task
        row["difference"] = abs(row["autotrain"] - row["plain"])
        row["rounds"], row["interventions"] = done["rounds"], done["interventions"]
        row["guard_actions"] = done["guard_actions"]
        row["time_ratio"] = done["seconds"] / seconds
        row["harmless"] = row["difference"] <= HARMLESS * max(1.0, abs(row["plain"]))
        for _ in range(repeats - 1):
            seconds = _plain_seconds(scenario)
            auto = scenario.make()
            ratio = autotrain_arm(auto, scenario.steps)["seconds"] / seconds
            _add_timing(row, ratio, metric(auto.task, evaluate(auto)) == row["autotrain"])
    except Exception as err:
        row["error"] = f"{type(err).__name__}: {err}"
        row["harmless"] = False
    return row


def chosen(split: str, quick: bool, names: Sequence[str] | None) -> tuple[list[Scenario], list[Scenario]]:
    """(broken scenarios to repair, healthy ones to leave unharmed): the named ones, else QUICK (no healthy ones),
    else those of `split` ("test", "dev" or "all").

    >>> chosen("test", quick=True, names=None)[0][0].name          # unknown scenarios: ValueError
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
    return [s for s in picked if s.label != "healthy"], [s for s in picked if s.label == "healthy"]


def run_all(broken: Sequence[Scenario], healthy: Sequence[Scenario] = (), arms: Sequence[str] = tuple(ARMS),
            progress: Callable[[int, str], None] = lambda done, name: None,
            repeats: int = TIMING_REPEATS) -> tuple[list[dict], list[dict]]:
    """(`repair` of each broken scenario, `harmless` of each healthy one), single-threaded torch, references
    shared; `progress(done, name)` before each.

    >>> rows, controls = run_all(*chosen("test", True, None), progress=lambda done, name: print(done, name))
    0 mlp_sigmoid_deep_vanishing
    ...
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        references = References()
        rows = []
        for done, scenario in enumerate(broken):
            progress(done, scenario.name)
            rows.append(repair(scenario, references, arms, repeats))
        controls = []
        for done, scenario in enumerate(healthy, start=len(broken)):
            progress(done, scenario.name)
            controls.append(harmless(scenario, repeats))
        return rows, controls
    finally:
        torch.set_num_threads(threads)


def arm_rows(rows: Sequence[dict[str, Any]], arm: str) -> list[dict[str, Any]]:
    """The flat rows `aggregate` reads, for one arm (a scenario that raised before the arms is a failure)."""
    flat = []
    for r in rows:
        got = r["arms"].get(arm, {"success": False, "error": r["error"] or "not run"})
        flat.append({"name": r["name"], "label": r["label"], "task": r["task"], **got,
                     "error": r["error"] or got.get("error")})
    return flat


def _number(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _spread(timed: dict[str, Any]) -> str:
    """ ' [low-high]' of a row's time ratios when it was timed more than once; a flag when a repeat trained to another
    metric."""
    low_high = f" [{_number(timed['time_ratios'][0], 2)}-{_number(timed['time_ratios'][1], 2)}]" \
        if timed.get("time_ratios") else ""
    return low_high + (" nondeterministic" if timed.get("nondeterministic") else "")


def to_markdown(meta: dict[str, Any], rows: Sequence[dict[str, Any]], summaries: dict[str, dict[str, Any]],
                controls: Sequence[dict[str, Any]]) -> str:
    """The report: how it was run, each arm's aggregate, the per-scenario table, autotrain's rounds, the healthy
    controls.

    >>> print(to_markdown(meta, rows, {arm: aggregate(arm_rows(rows, arm)) for arm in ARMS}, controls))
    # Repair benchmark: quick
    ...
    """
    arms = list(summaries)
    lines = [f"# Repair benchmark: {meta['selection']}", "",
             f"`{meta['command']}` — {meta['date']}, {meta['machine']}, torch {meta['torch']}, "
             f"{meta['threads']} torch thread(s), {meta['seconds']:.1f} s in all.", "",
             f"Success: the arm's model reaches >= {ACCURACY_SHARE:.0%} of the reference's test accuracy, or a test "
             f"loss <= {LOSS_FACTOR}x the reference's, after the same number of steps. Time ratio: the arm's "
             "seconds (checkups, treatments, watched training, restarts) / the untreated training's, the median of "
             f"{meta.get('repeats', 1)} interleaved timings (lowest-highest in brackets). Arms: "
             "**autotrain** = `gd.autotrain`; **random** = the same loop choosing one or two random remedies and a "
             "random learning-rate factor whenever it acts; **autotrainer** = the same loop with AUTOTRAINER's "
             f"problem -> solution table (benchmarks/repair_baselines.py). At most {ROUNDS} restarts each.", "",
             "## Aggregate", "", "| arm | repaired | by label | median time ratio | mean time ratio |",
             "|---|---|---|---|---|"]
    for arm, s in summaries.items():
        labels = ", ".join(f"{label} {v['successes']}/{v['n']}" for label, v in s["by_label"].items())
        lines.append(f"| {arm} | {s['successes']}/{s['n']} = {_number(s['success_rate'])} | {labels} | "
                     f"{_number(s['time_ratio_median'])} | {_number(s['time_ratio_mean'])} |")
    lines += ["", "## Per scenario", "",
              "| scenario | label | metric | untreated | reference | "
              + " | ".join(f"{arm} (ratio)" for arm in arms) + " |",
              "|---|---|---|---|---|" + "---|" * len(arms)]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['name']} | {r['label']} | error: {r['error']} |" + " |" * (len(arms) + 2))
            continue
        cells = []
        for arm in arms:
            a = r["arms"][arm]
            cells.append("error" if a.get("error") else
                         f"{'**' if a['success'] else ''}{_number(a['metric'])}{'**' if a['success'] else ''} "
                         f"({_number(a['time_ratio'])}{_spread(a)})")
        lines.append(f"| {r['name']} | {r['label']} | {'accuracy' if r['task'] == 'classification' else 'loss'} | "
                     f"{_number(r['untreated'])} | {_number(r['reference'])} | " + " | ".join(cells) + " |")
    lines += ["", "## What gd.autotrain did", ""]
    for r in rows:
        a = r["arms"].get("autotrain", {})
        if a.get("error"):
            lines.append(f"- **{r['name']}**: error {a['error']}")
        elif a:
            told = "; ".join(a["rounds"])
            acts = f"; in the loop: {', '.join(a['interventions'][:4])}" if a["interventions"] else ""
            more = f" (+{len(a['interventions']) - 4} more)" if len(a["interventions"]) > 4 else ""
            lines.append(f"- **{r['name']}** ({'repaired' if a['success'] else 'not repaired'}): {told}{acts}{more}")
    if controls:
        ok = sum(bool(c["harmless"]) for c in controls)
        actions = sum(c.get("guard_actions", 0) for c in controls)
        ratios = [c["time_ratio"] for c in controls if c.get("time_ratio") is not None]
        lines += ["", "## Healthy controls", "",
                  f"{ok}/{len(controls)} within {HARMLESS} of plain training; guard actions on healthy runs: "
                  f"{actions}; median time ratio {_number(statistics.median(ratios)) if ratios else '—'}.", "",
                  "| scenario | plain | autotrain | difference | guard actions | rounds | time ratio |",
                  "|---|---|---|---|---|---|---|"]
        for c in controls:
            if c.get("error"):
                lines.append(f"| {c['name']} | error: {c['error']} | | | | | |")
                continue
            lines.append(f"| {c['name']} | {_number(c['plain'])} | {_number(c['autotrain'])} | "
                         f"{_number(c['difference'])} | {c['guard_actions']} | {'; '.join(c['rounds'])} | "
                         f"{_number(c['time_ratio'])}{_spread(c)} |")
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
    parser.add_argument("--scenarios", nargs="+", metavar="NAME", help="these scenarios only")
    parser.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=list(ARMS), help="the repairing arms to run")
    parser.add_argument("--no-controls", action="store_true", help="skip the healthy scenarios")
    parser.add_argument("--repeats", type=int, default=TIMING_REPEATS,
                        help="timings of each training, interleaved (the time ratio is their median)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    broken, healthy = chosen(args.split, args.quick, args.scenarios)
    if args.no_controls:
        healthy = []
    selection = "selected" if args.scenarios else "quick" if args.quick else args.split

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as bar:
        total = len(broken) + len(healthy)
        task = bar.add_task("repair", total=total)
        rows, controls = run_all(broken, healthy, args.arms,
                                 lambda done, name: bar.update(task, completed=done, description=f"repair {name}"),
                                 args.repeats)
        bar.update(task, completed=total, description="repair")
    meta = {"selection": selection, "command": "python -m benchmarks.repair " + " ".join(sys.argv[1:] if argv is None
                                                                                          else argv),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "torch": torch.__version__, "threads": 1, "repeats": args.repeats, "seconds": time.perf_counter() - start}
    summaries = {arm: aggregate(arm_rows(rows, arm)) for arm in args.arms}
    markdown = to_markdown(meta, rows, summaries, controls)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    from gradient_doctor.diagnose.finding import json_safe

    (args.out / f"repair-{selection}.json").write_text(json.dumps(json_safe(
        {**meta, "aggregate": summaries, "rows": rows, "controls": controls}), indent=1))
    (args.out / f"repair-{selection}.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
