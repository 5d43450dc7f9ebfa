"""Run the real-architecture zoo: for every control, the plain-torch label, `gd.checkup` at init (timed), and a
watched training run with live checks, then `run.diagnose()`; any warning or critical finding is a false alarm. Then
every broken variant the same way: caught when a finding names its (plain-torch confirmed) failure.

    python -m benchmarks.real [--steps 100] [--controls llama mamba] [--broken llama_lr_x100] [--out DIR]
    python -m benchmarks.real --quick          # checkup at init only, on QUICK (what tests/benchmarks runs)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import transformers

import gradient_doctor as gd

from .broken import BROKEN, Broken
from .controls import CONTROLS, Control, optimizer_for, train
from .labels import broken_label, init_is_finite, stream_ratio, train_label

RESULTS = Path(__file__).parent.parent / "results"
QUICK = ("llama", "qwen2", "mamba", "t5", "word_lm_lstm")
CHECK_EVERY = 25  # live checks during the watched run


def alarms(findings: Sequence[gd.Finding]) -> list[str]:
    """`kind (severity) at layer` for every warning or critical finding."""
    return [f"{f.kind} ({f.severity}) at {', '.join(f.layers[:2]) or 'the run'}" for f in findings
            if f.severity != "info"]


def checkup_at_init(control: Control, found: list | None = None) -> dict:
    """Time `gd.checkup` on batch 0; its findings are appended to `found` when given."""
    model = control.build()
    inputs, targets = control.batch(0)
    extra = dict(control.checkup, targets=targets) if control.checkup else {}
    started = time.perf_counter()
    diag = gd.checkup(model, inputs, **extra)
    if found is not None:
        found += diag.findings
    return {"checkup_seconds": round(time.perf_counter() - started, 2), "checkup_alarms": alarms(diag.findings)}


def watched_run(control: Control, steps: int, found: list | None = None) -> dict:
    """Train under gd.watch with live checks; the live and final findings are appended to `found` when given."""
    model = control.build()
    optimizer = optimizer_for(control, model)
    live: list[gd.Finding] = []
    started = time.perf_counter()
    with gd.watch(model, optimizer, on_finding=live.append, check_every=CHECK_EVERY) as run:
        train(control, model, optimizer, steps, on_step=lambda loss: run.step(loss=loss))
        final = run.diagnose()
    if found is not None:
        found += live + final.findings
    return {"watch_seconds": round(time.perf_counter() - started, 2), "live_alarms": alarms(live),
            "final_alarms": alarms(final.findings)}


def judge(name: str, steps: int, quick: bool) -> dict:
    control = CONTROLS[name]
    steps = control.steps or steps
    row = {"control": name, "family": control.family, "steps": steps}
    if quick:
        row |= {"label": "healthy" if init_is_finite(control) else "broken at init"}
        row |= checkup_at_init(control)
    else:
        label = train_label(control, steps)
        row |= {"label": "healthy" if label.healthy else "did not train", "start_loss": round(label.start_loss, 3),
                "end_loss": round(label.end_loss, 3), "stream_ratio": round(stream_ratio(control), 3)}
        row |= checkup_at_init(control) | watched_run(control, steps)
    row["false_alarm"] = bool(row["label"] == "healthy" and any(
        row.get(key) for key in ("checkup_alarms", "live_alarms", "final_alarms")))
    return row


def names_the_failure(finding: gd.Finding, variant: Broken) -> bool:
    """A warning or critical finding of one of the variant's kinds (lr_too_high: or one ranking decrease_lr first
    or second)."""
    if finding.severity == "info":
        return False
    return finding.kind in variant.kinds or (variant.label == "lr_too_high" and "decrease_lr" in finding.remedies[:2])


def judge_broken(name: str, steps: int) -> dict:
    variant = BROKEN[name]
    steps = variant.control.steps or steps
    confirmed, evidence = broken_label(variant, steps)
    row = {"variant": name, "family": variant.control.family, "label": variant.label, "confirmed": confirmed,
           "evidence": {k: round(v, 4) for k, v in evidence.items()}}
    found: list[gd.Finding] = []
    row |= checkup_at_init(variant.control, found) | watched_run(variant.control, steps, found)
    alarmed = [f for f in found if f.severity != "info"]
    row["caught"] = any(names_the_failure(f, variant) for f in alarmed)
    row["first_finding"] = f"{alarmed[0].kind} ({alarmed[0].severity})" if alarmed else "—"
    row["first_names_it"] = bool(alarmed) and names_the_failure(alarmed[0], variant)
    return row


def markdown(meta: dict, rows: list[dict], broken: list[dict]) -> str:
    lines = [f"# Real architectures: {meta['selection']}", "",
             f"`{meta['command']}` — {meta['date']}, {meta['machine']}, torch {meta['torch']}, transformers "
             f"{meta['transformers']}, {meta['seconds']:.0f} s in all.", "",
             "Label: plain torch (benchmarks/real/labels.py): healthy = finite, and the last 10 steps' mean loss at "
             "least 10 % below the first 5 steps' with the control's own optimizer and warm-up (quick: finite "
             "loss and gradients at init). Stream ratio: ‖∂L/∂h‖ at the first block's output over the last's, at "
             "init. An alarm is a warning or critical finding: checkup at init, the live checks every "
             f"{CHECK_EVERY} steps, and run.diagnose() at the end.", "",
             f"False alarms: {meta['false_alarms']} of {meta['healthy']} healthy controls.", "",
             "| control | family | label | steps | loss start → end | stream ratio | checkup (s) | checkup alarms | "
             "live alarms | final alarms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        loss = f"{r['start_loss']} → {r['end_loss']}" if "start_loss" in r else "—"
        lines.append(f"| {r['control']} | {r['family']} | {r['label']} | {r['steps']} | {loss} | {r.get('stream_ratio', '—')} | "
                     f"{r['checkup_seconds']} | {'; '.join(r['checkup_alarms']) or '—'} | "
                     f"{'; '.join(r.get('live_alarms', [])) or '—'} | {'; '.join(r.get('final_alarms', [])) or '—'} |")
    if broken:
        scored = [r for r in broken if r["confirmed"]]
        lines += ["", "## Broken variants", "",
                  f"Caught with a finding that names the failure: {sum(r['caught'] for r in scored)} of {len(scored)} "
                  f"variants whose label plain torch confirmed; the first warning/critical finding names it in "
                  f"{sum(r['first_names_it'] for r in scored)} of {len(scored)}. Labels: exploding = gradient norm at "
                  "init >= 10x the healthy control's; lr_too_high = the run keeps less than half of the healthy "
                  "control's progress (or turns non-finite).", "",
                  "| variant | family | label | confirmed (evidence) | first finding | caught | checkup | live | final |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in broken:
            evidence = ", ".join(f"{k} {v:.4g}" for k, v in r["evidence"].items())
            lines.append(f"| {r['variant']} | {r['family']} | {r['label']} | {'yes' if r['confirmed'] else 'no'} "
                         f"({evidence}) | {r['first_finding']} | {'yes' if r['caught'] else 'no'} | "
                         f"{'; '.join(r['checkup_alarms']) or '—'} | {'; '.join(r['live_alarms']) or '—'} | "
                         f"{'; '.join(r['final_alarms']) or '—'} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the zoo and write real-<selection>.json/.md; exit 1 when a healthy control raised an alarm.

    >>> main(["--quick", "--out", "/tmp/r"])
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per control (default 100)")
    parser.add_argument("--controls", nargs="+", choices=sorted(CONTROLS), metavar="NAME", help="only these")
    parser.add_argument("--quick", action="store_true", help=f"checkup at init only, on {', '.join(QUICK)}")
    parser.add_argument("--broken", nargs="*", choices=sorted(BROKEN), metavar="NAME",
                        help="only broken variants: these, or all of them when none is named")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for real-<selection>.json/.md")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared 2-core machine two threads made these small "
                             "models many times slower, as in benchmarks.detection)")
    args = parser.parse_args(argv)
    only_broken = args.broken is not None  # --broken [NAME ...]: these variants (all when none is named) alone
    names = args.controls or (list(QUICK) if args.quick else [] if only_broken else list(CONTROLS))
    broken_names = args.broken or (list(BROKEN) if only_broken or not (args.controls or args.quick) else [])
    selection = "selected" if args.controls else "quick" if args.quick else "cpu"
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the transformers configs' notes; findings are collected, not warned
        for name in names:
            rows.append(judge(name, args.steps, args.quick))
            print(f"{name}: {rows[-1]['label']}, alarms: {rows[-1]['false_alarm']}", flush=True)
        broken = []
        for name in broken_names:
            broken.append(judge_broken(name, args.steps))
            print(f"{name}: confirmed {broken[-1]['confirmed']}, caught {broken[-1]['caught']}", flush=True)
    meta = {"selection": selection, "command": "python -m benchmarks.real " + " ".join(argv or []),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
            "transformers": transformers.__version__, "seconds": time.perf_counter() - started, "steps": args.steps,
            "threads": args.threads,
            "healthy": sum(r["label"] == "healthy" for r in rows), "false_alarms": sum(r["false_alarm"] for r in rows),
            "broken_confirmed": sum(r["confirmed"] for r in broken),
            "broken_caught": sum(r["caught"] and r["confirmed"] for r in broken)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"real-{selection}.json").write_text(json.dumps({"meta": meta, "rows": rows, "broken": broken}, indent=1))
    (args.out / f"real-{selection}.md").write_text(markdown(meta, rows, broken))
    print(f"written: {args.out / f'real-{selection}.json'} and .md; false alarms {meta['false_alarms']} of "
          f"{meta['healthy']}")
    return 1 if meta["false_alarms"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
