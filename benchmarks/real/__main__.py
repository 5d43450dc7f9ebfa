"""Run the real-architecture zoo: for every control, the plain-torch label, `gd.checkup` at init (timed), and a
watched training run with live checks, then `run.diagnose()`; any warning or critical finding is a false alarm.

    python -m benchmarks.real [--steps 100] [--controls llama mamba] [--out benchmarks/results]
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

from .controls import CONTROLS, Control
from .labels import init_is_finite, stream_ratio, train_label

RESULTS = Path(__file__).parent.parent / "results"
QUICK = ("llama", "qwen2", "mamba", "t5", "word_lm_lstm")
CHECK_EVERY = 25  # live checks during the watched run


def alarms(findings: Sequence[gd.Finding]) -> list[str]:
    """`kind (severity) at layer` for every warning or critical finding."""
    return [f"{f.kind} ({f.severity}) at {', '.join(f.layers[:2]) or 'the run'}" for f in findings
            if f.severity != "info"]


def checkup_at_init(control: Control) -> dict:
    model = control.build()
    inputs, targets = control.batch(0)
    extra = dict(control.checkup, targets=targets) if control.checkup else {}
    started = time.perf_counter()
    diag = gd.checkup(model, inputs, **extra)
    return {"checkup_seconds": round(time.perf_counter() - started, 2), "checkup_alarms": alarms(diag.findings)}


def watched_run(control: Control, steps: int) -> dict:
    model = control.build()
    optimizer = control.optimizer([p for p in model.parameters() if p.requires_grad])
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / control.warmup))
    live: list[gd.Finding] = []
    started = time.perf_counter()
    with gd.watch(model, optimizer, on_finding=live.append, check_every=CHECK_EVERY) as run:
        for step in range(steps):
            inputs, targets = control.batch(step)
            optimizer.zero_grad(set_to_none=True)
            loss = control.loss(model, inputs, targets)
            loss.backward()
            if control.clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), control.clip)
            optimizer.step()
            warmup.step()
            run.step(loss=loss)
        final = run.diagnose()
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


def markdown(meta: dict, rows: list[dict]) -> str:
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
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the zoo and write real-<selection>.json/.md; exit 1 when a healthy control raised an alarm.

    >>> main(["--quick", "--out", "/tmp/r"])
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per control (default 100)")
    parser.add_argument("--controls", nargs="+", choices=sorted(CONTROLS), metavar="NAME", help="only these")
    parser.add_argument("--quick", action="store_true", help=f"checkup at init only, on {', '.join(QUICK)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for real-<selection>.json/.md")
    args = parser.parse_args(argv)
    names = args.controls or (list(QUICK) if args.quick else list(CONTROLS))
    selection = "selected" if args.controls else "quick" if args.quick else "cpu"
    started = time.perf_counter()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the transformers configs' notes; findings are collected, not warned
        for name in names:
            rows.append(judge(name, args.steps, args.quick))
            print(f"{name}: {rows[-1]['label']}, alarms: {rows[-1]['false_alarm']}", flush=True)
    meta = {"selection": selection, "command": "python -m benchmarks.real " + " ".join(argv or []),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
            "transformers": transformers.__version__, "seconds": time.perf_counter() - started, "steps": args.steps,
            "healthy": sum(r["label"] == "healthy" for r in rows), "false_alarms": sum(r["false_alarm"] for r in rows)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"real-{selection}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out / f"real-{selection}.md").write_text(markdown(meta, rows))
    print(f"written: {args.out / f'real-{selection}.json'} and .md; false alarms {meta['false_alarms']} of "
          f"{meta['healthy']}")
    return 1 if meta["false_alarms"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
