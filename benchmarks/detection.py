"""Detection benchmark: checkup at init and watch+diagnose during a short run on every labelled scenario of the zoo,
scored against the labels, next to AUTOTRAINER's rules and the fixed-threshold rule on the same recorded runs.

    $ python -m benchmarks.detection                     # the test split; results in benchmarks/results/
    $ python -m benchmarks.detection --split all         # dev and test
    $ python -m benchmarks.detection --quick             # the QUICK subset (the test suite runs it); temp dir
    $ python -m benchmarks.detection --scenarios mlp_relu_healthy mlp_sigmoid_deep_vanishing --out /tmp/d

Per scenario (`run_scenario`): `make()`; `gd.checkup(model, inputs, targets, loss_fn)` on the first batch, at
init (the model is left untouched); then the scenario's plain training loop (`benchmarks.scenarios.train`, i.e.
`train_step`, torch seeded 0) for its `steps`, watched by `gd.watch(model, optimizer, on_finding=...,
check_every=CHECK_EVERY, **CADENCES)` with `run.step(loss=loss)` after each step; then `run.diagnose()` on the
whole run. Detectors: `checkup` (its warning/critical kinds, at step 0); `watch` (every kind reported live through
`on_finding`, at the number of optimizer steps done when it was reported, since a `Finding` carries no step and
the check runs as the next step begins; plus the final diagnosis's kinds not seen live, at the run's length: a
warning shown live is an alarm even if the final diagnosis no longer reports it); `ours` (both, each kind at its
earliest step); and the peers (`detection_peers`), which read the same run's record. Detail, update and activation
statistics are recorded every 10 steps (CADENCES, not the default 50) so that zero fractions, which AUTOTRAINER's
dying-ReLU rule needs, and our rules' points are dense enough in a few hundred steps; every tool sees that one
record. An exception in a stage is recorded (`errors`) and counts against the detectors that stage feeds
(`failed`); the benchmark goes on. Scoring and its decisions: `detection_score`. Torch runs on `--threads` (1)
CPU threads: on a shared 2-core machine two threads made these small models ~7x slower.

QUICK, the subset the test suite runs with floors (recall >= 0.9 on its broken scenarios, no false alarm on its
healthy ones), was picked by a rule, not by results: from the dev split, the first healthy control of each family
in zoo order, and the first scenario of each of the labels vanishing, exploding, dead_units and non_finite.

Output: markdown tables on stdout, and `detection-<split|quick|selected>.json` and `.md` (command line, machine,
date, settings, per-scenario rows) in `--out` (default benchmarks/results; `--quick`: a temporary directory).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

import gradient_doctor as gd
from benchmarks.detection_peers import GradientRecord, autotrainer, fixed_threshold
from benchmarks.detection_score import DETECTORS, HEALTHY, NORMALIZE_INPUTS, first_finding, first_findings, judge, score
from benchmarks.scenarios import SCENARIOS, Scenario, train

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CHECK_EVERY = 10  # live checks: every 10 steps
CADENCES = {"detail_every": 10, "update_every": 10, "activation_every": 10}
#: The --quick subset (run by tests/benchmarks/test_detection.py; the rule that picked it is in the module docstring).
QUICK = ("mlp_relu_healthy", "cnn_relu_healthy", "lstm_sum30_healthy", "rnn_tanh_sum30_healthy",
         "gru2_sum30_frozen_first_healthy", "tf_post2_healthy", "mlp_sigmoid_deep_vanishing",
         "mlp_batchnorm_deep_exploding", "mlp_relu_negative_bias_dead", "mlp_sgd_huge_lr_non_finite")
PEER_RULES: dict[str, Callable[[GradientRecord], dict[str, int]]] = {
    "autotrainer": autotrainer, "threshold": fixed_threshold,
}


def alarm_kinds(findings: Iterable[gd.Finding]) -> set[str]:
    """The warning/critical kinds of `findings`, plus NORMALIZE_INPUTS when one of them ranks normalize_inputs.

    >>> alarm_kinds(run.diagnose().findings)
    {'saturated_activation', 'remedy:normalize_inputs'}
    """
    kinds: set[str] = set()
    for finding in findings:
        if finding.severity in ("warning", "critical"):
            kinds.add(finding.kind)
            if "normalize_inputs" in finding.remedies:
                kinds.add(NORMALIZE_INPUTS)
    return kinds


def _note(findings: list[dict], stage: str, found: Iterable[gd.Finding]) -> None:
    findings += [{"stage": stage, "kind": f.kind, "severity": f.severity, "layers": f.layers[:4],
                  "summary": f.summary, "remedies": f.remedies[:3], "follows_from": f.evidence.get("follows_from")}
                 for f in found if f.severity != "info"]


def run_scenario(scenario: Scenario) -> dict[str, Any]:
    """Run every detector on one scenario; a JSON-able record (see `detection_score` for its fields).

    >>> run_scenario(SCENARIOS["mlp_sigmoid_deep_vanishing"])["verdicts"]["checkup"]
    {'vanishing_gradient': 0}
    """
    started = time.perf_counter()
    verdicts: dict[str, dict[str, int]] = {name: {} for name in DETECTORS}
    record: dict[str, Any] = {"name": scenario.name, "family": scenario.family, "label": scenario.label,
                              "split": scenario.split, "variant": scenario.variant, "steps": scenario.steps,
                              "verdicts": verdicts, "failed": [], "errors": {}, "findings": [], "loss": None}

    def fail(stage: str, err: BaseException, detectors: Iterable[str]) -> None:
        record["errors"][stage] = f"{type(err).__name__}: {err}"
        record["failed"] += [d for d in detectors if d not in record["failed"]]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the live findings' RuntimeWarnings: they are recorded, not printed
        try:
            setup = scenario.make()
        except Exception as err:
            fail("make", err, DETECTORS)
            return _finish(record, started)
        try:
            inputs, targets = setup.batch(0)
            diagnosis = gd.checkup(setup.model, inputs, targets, setup.loss_fn)
            verdicts["checkup"] = dict.fromkeys(sorted(alarm_kinds(diagnosis.findings)), 0)
            _note(record["findings"], "checkup", diagnosis.findings)
        except Exception as err:
            fail("checkup", err, ("checkup", "ours"))
        run = _train_watched(setup, scenario.steps, verdicts["watch"], record, fail)
        if run is not None:
            _judge_record(run, setup.model, scenario.steps, record, fail)
    verdicts["ours"] = _earliest(verdicts["checkup"], verdicts["watch"])
    return _finish(record, started)


def _earliest(*found: dict[str, int]) -> dict[str, int]:
    """Kinds found by any, each at its earliest step."""
    merged: dict[str, int] = {}
    for one in found:
        for kind, step in one.items():
            merged[kind] = min(step, merged.get(kind, step))
    return dict(sorted(merged.items()))


def _train_watched(setup, steps: int, live: dict[str, int], record: dict, fail) -> "gd.Run | None":
    """Train `steps` plain steps under gd.watch; live findings go to `live` (kind -> steps done)."""
    done = [0]

    def on_finding(finding: gd.Finding) -> None:
        for kind in alarm_kinds([finding]):
            live.setdefault(kind, done[0])
        _note(record["findings"], f"live@{done[0]}", [finding])

    losses: list[float] = []
    run = None
    try:
        torch.manual_seed(0)
        optimizer = setup.optimizer(setup.model.parameters())
        with gd.watch(setup.model, optimizer, on_finding=on_finding, check_every=CHECK_EVERY, **CADENCES) as run:
            for done[0], loss in enumerate(train(setup, steps, optimizer), start=1):
                run.step(loss=loss)
                losses.append(float(loss))
    except Exception as err:
        fail("train", err, ("watch", "ours", *PEER_RULES))
        return None
    finally:
        if losses:  # JSON has no inf/NaN: those are written as strings
            record["loss"] = {key: value if math.isfinite(value) else str(value)
                              for key, value in (("first", losses[0]), ("last", losses[-1]))}
    return run


def _judge_record(run: "gd.Run", model: torch.nn.Module, steps: int, record: dict, fail) -> None:
    """The final diagnosis (kinds not seen live get step `steps`) and the peers, all on the run's record."""
    try:
        diagnosis = run.diagnose()
        for kind in sorted(alarm_kinds(diagnosis.findings)):
            record["verdicts"]["watch"].setdefault(kind, steps)
        _note(record["findings"], "diagnose", diagnosis.findings)
    except Exception as err:
        fail("diagnose", err, ("watch", "ours"))
    try:
        gradients = GradientRecord.from_run(run, model)
    except Exception as err:
        fail("record", err, PEER_RULES)
        return
    for name, rule in PEER_RULES.items():
        try:
            record["verdicts"][name] = rule(gradients)
        except Exception as err:
            fail(name, err, (name,))


def _finish(record: dict, started: float) -> dict:
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


# -- selection, running, output -----------------------------------------------------------------------------
def choose(split: str = "test", quick: bool = False, names: list[str] | None = None) -> list[Scenario]:
    """The scenarios to run: the named ones, else the QUICK subset, else a split ("dev", "test" or "all").

    >>> [s.name for s in choose(quick=True)]
    """
    wanted = list(names) if names else list(QUICK) if quick else None
    if wanted is None:
        return [s for s in SCENARIOS.values() if split == "all" or s.split == split]
    unknown = [n for n in wanted if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"no scenarios named {unknown}; the zoo has {sorted(SCENARIOS)}")
    return [SCENARIOS[n] for n in wanted]


def run_all(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """`run_scenario` on each, with a progress bar on stderr.

    >>> records = run_all(choose("dev"))
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    records = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("detection", total=len(scenarios))
        for scenario in scenarios:
            progress.update(task, description=f"detection: {scenario.name}")
            records.append(run_scenario(scenario))
            progress.advance(task)
        progress.update(task, description="detection: done")
    return records


def machine() -> dict[str, Any]:
    """Where the benchmark ran: platform, CPU count, torch and library versions."""
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "gradient_doctor": gd.__version__}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _kinds(found: dict[str, int]) -> str:
    return ", ".join(f"{kind}@{step}" for kind, step in sorted(found.items(), key=lambda kv: (kv[1], kv[0]))) or "–"


def markdown(result: dict[str, Any]) -> str:
    """The report: summary, recall per label, precision per kind, and one row per scenario."""
    scores, records = result["scores"], result["records"]
    summary = [[name, f"{_pct(s['recall'])} ({s['detected']}/{s['broken']})",
                f"{_pct(s['covered']['recall'])} ({s['covered']['detected']}/{s['covered']['n']})",
                f"{_pct(s['false_alarm_rate'])} ({s['false_alarms']}/{s['healthy']})",
                _pct(s["latency"]["mean"]), _pct(s["latency"]["median"])] for name, s in scores.items()]
    labels = sorted({label for s in scores.values() for label in s["per_label"]})
    per_label = [[label, next(iter(scores.values()))["per_label"][label]["n"]]
                 + [f"{s['per_label'][label]['detected']}/{s['per_label'][label]['n']}" for s in scores.values()]
                 for label in labels]
    per_kind = [[name, kind, e["reported"], e["correct"], _pct(e["precision"])]
                for name, s in scores.items() for kind, e in s["per_kind"].items()]
    rows = []
    for r in records:
        ours = result["judged"][r["name"]]["ours"]
        if r["label"] == HEALTHY:
            outcome = "FALSE ALARM" if ours["alarm"] else "quiet"
        else:
            outcome = "detected" if ours["detected"] else "MISS"
        first = first_finding(r) if r["label"] != HEALTHY else None
        read_first = "–" if first is None else f"{first['kind']} ({first['stage']})" + ("" if first["names_label"]
                                                                                         else " ✗")
        rows.append([r["name"], r["split"], r["label"], *(_kinds(r["verdicts"][d]) for d in
                     ("checkup", "watch", "autotrainer", "threshold")), outcome, read_first, _pct(ours["latency"]),
                     r["seconds"], "; ".join(f"{k}: {v}" for k, v in r["errors"].items())])
    firsts = result["first_findings"]
    meta = result["meta"]
    head = (f"# Detection benchmark: {meta['selection']}\n\n`{meta['command']}` on {meta['date']}; "
            f"{meta['machine']['platform']}, {meta['machine']['cpus']} CPUs, torch {meta['machine']['torch']}; "
            f"{meta['scenarios']} scenarios ({meta['broken']} broken, {meta['healthy']} healthy) in "
            f"{meta['seconds']:.0f} s. Live checks every {CHECK_EVERY} steps; detail/update/activation "
            f"statistics every {CADENCES['detail_every']} steps, for all detectors alike. Kinds are `kind@step` "
            f"(checkup = step 0; a kind only the final diagnosis found = the run's length).")
    return "\n\n".join([
        head, "## Summary",
        _table(["detector", "recall", "covered recall", "false alarms (healthy)", "mean latency", "median latency"],
               summary),
        "## The first finding",
        f"The first warning or critical finding a user reads (checkup's, else the first live check's, else the final "
        f"diagnosis's; most severe first) names the labelled cause in {firsts['named']} of {firsts['broken']} broken "
        f"scenarios ({_pct(firsts['share'])}). Not: {', '.join(firsts['misses']) or 'none'}. Read with it (same "
        f"stage): {firsts['same_stage']} more findings, {firsts['follows_first']} of them saying they follow from it.",
        "## Recall per label", _table(["label", "n", *scores], per_label),
        "## Precision per kind", _table(["detector", "kind", "reported", "correct", "precision"], per_kind),
        "## Scenarios",
        _table(["scenario", "split", "label", "checkup", "watch (live + final)", "AUTOTRAINER", "threshold",
                "ours", "first finding (✗: not the label)", "latency", "s", "errors"], rows),
    ]) + "\n"


def evaluate(scenarios: list[Scenario], selection: str, command: str) -> dict[str, Any]:
    """Run and score `scenarios`: {"meta", "scores", "judged", "records"} (JSON-able).

    >>> evaluate(choose(quick=True), "quick", "python -m benchmarks.detection --quick")["scores"]["ours"]["recall"]
    """
    started = time.perf_counter()
    records = run_all(scenarios)
    healthy = sum(r["label"] == HEALTHY for r in records)
    meta = {"selection": selection, "command": command, "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "check_every": CHECK_EVERY, "cadences": CADENCES, "scenarios": len(records),
            "healthy": healthy, "broken": len(records) - healthy, "seconds": time.perf_counter() - started}
    judged = {r["name"]: {d: judge(r, d, table) for d, table in DETECTORS.items()} for r in records}
    return {"meta": meta, "scores": score(records), "first_findings": first_findings(records), "judged": judged,
            "records": records}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: --split, --quick, --scenarios, --threads (default 1), --out.

    >>> parse_args(["--quick", "--out", "/tmp/d"]).threads
    1
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detection", description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("test", "dev", "all"), default="test",
                        help="which scenarios to run (default: test, the reported split)")
    parser.add_argument("--quick", action="store_true", help=f"only the quick subset: {', '.join(QUICK)}")
    parser.add_argument("--scenarios", nargs="+", metavar="NAME", help="only these scenarios (overrides --split)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the zoo's models are small, and one thread is faster "
                             "and steadier than two on a shared 2-core machine)")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results; --quick: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark as the command line says; print the tables; write the JSON and markdown files.

    >>> main(["--quick"])["scores"]["ours"]["recall"]       # files in a temp dir: detection-quick.{json,md}
    1.0
    """
    args = parse_args(argv)
    selection = "selected" if args.scenarios else "quick" if args.quick else args.split
    scenarios = choose(args.split, args.quick, args.scenarios)
    command = shlex.join(["python", "-m", "benchmarks.detection", *(sys.argv[1:] if argv is None else argv)])
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        result = evaluate(scenarios, selection, command)
    finally:
        torch.set_num_threads(threads)
    text = markdown(result)
    out = args.out or (Path(tempfile.mkdtemp(prefix="gd-detection-")) if args.quick else RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"detection-{selection}.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    (out / f"detection-{selection}.md").write_text(text)
    print(text)
    print(f"written: {out / f'detection-{selection}.json'} and .md", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
