"""`gd.autotrain` on the real-architecture zoo (benchmarks/real): does it leave healthy models alone, and what does
it do with the broken variants?

    python -m benchmarks.real_autotrain                          # every control and broken variant, 100 steps
    python -m benchmarks.real_autotrain --controls gpt2 --broken gpt2_lr_x100 --out /tmp/ra

Each model trains twice on the same batches from the same seed: plain torch (zero_grad, the control's loss,
backward, step) and `gd.autotrain(..., step_fn=control loss)`. Both at the control's optimizer and a constant
learning rate: autotrain takes no scheduler and adds no clipping of its own unless it finds a reason, so the recipe's
linear warm-up and clipping (benchmarks/real/controls.py) are left out of both arms. A healthy control passes when
autotrain acts nowhere and its weights equal plain training's bit for bit, or when what it did was not harmful: an
end loss at most HARM above plain training's (without its warm-up a control may stall, and then acting is right). A
broken variant's row reports the plain run's end loss, autotrain's, and the healthy control's under the same
constant-rate recipe.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import transformers

import gradient_doctor as gd

from .real.broken import BROKEN
from .real.controls import CONTROLS, Control, optimizer_for

RESULTS = Path(__file__).parent / "results"
#: End loss: the mean of the last END_STEPS steps' losses (NaN when one is not finite).
END_STEPS = 10
#: An action on a healthy control is harmful when autotrain's end loss exceeds plain training's by more than this
#: share (or is not finite where plain training's is).
HARM = 0.01


def plain(control: Control, batches: list[Any]) -> tuple[torch.nn.Module, float, float]:
    """Train `control`'s model with its optimizer at a constant rate; returns (model, end loss, seconds).

    >>> model, end, seconds = plain(CONTROLS["gpt2"], [CONTROLS["gpt2"].batch(i) for i in range(100)])
    """
    torch.manual_seed(0)
    model = control.build()
    optimizer = optimizer_for(control, model)
    model.train()
    losses = []
    started = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = control.loss(model, *batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return model, _end(losses), time.perf_counter() - started


def autotrained(control: Control, batches: list[Any]) -> tuple[gd.AutoTrainResult, float, float]:
    """`gd.autotrain` on the same model, optimizer and batches; returns (result, end loss, seconds)."""
    torch.manual_seed(0)
    model = control.build()
    optimizer = optimizer_for(control, model)
    losses: list[torch.Tensor] = []

    def step_fn(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        loss = control.loss(model, *batch)
        losses.append(loss.detach())
        return loss

    started = time.perf_counter()
    result = gd.autotrain(model, optimizer, batches, step_fn=step_fn, steps=len(batches))
    return result, _end(losses), time.perf_counter() - started


def compare(name: str, control: Control, steps: int) -> dict[str, Any]:
    """Both arms on `control`: what autotrain did, whether the weights match plain training's, the end losses."""
    batches = [control.batch(step) for step in range(steps)]
    model, plain_end, plain_seconds = plain(control, batches)
    result, auto_end, auto_seconds = autotrained(control, batches)
    acted = any(r.action != "go_on" for r in result.rounds) or bool(result.interventions)
    same = not acted and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                              result.model.state_dict().values(), strict=True))
    harmful = acted and math.isfinite(plain_end) and not auto_end <= plain_end + HARM * abs(plain_end)
    return {"name": name, "steps": steps, "plain_end": _rounded(plain_end), "autotrain_end": _rounded(auto_end),
            "acted": acted, "harmful": harmful, "bit_identical": same, "rounds": [str(r) for r in result.rounds],
            "interventions": [str(i) for i in result.interventions],
            "time_ratio": round(auto_seconds / plain_seconds, 3)}


def markdown(meta: dict, controls: list[dict], broken: list[dict]) -> str:
    lines = [f"# gd.autotrain on real architectures ({meta['steps']} steps)", "",
             f"`{meta['command']}` — {meta['date']}, {meta['machine']}, torch {meta['torch']}, transformers "
             f"{meta['transformers']}, {meta['threads']} torch thread(s), {meta['seconds']:.0f} s in all.", "",
             "Both arms: the control's optimizer at a constant learning rate (no warm-up, no recipe clipping), the "
             f"same batches, seed 0. End loss: mean of the last {END_STEPS} steps. Time ratio: autotrain's seconds "
             "(checkup, treatment, watched training, checks) / plain training's, one timing each.", "",
             f"Healthy controls: autotrain acted on {meta['acted']} of {len(controls)}, harmfully (an end loss more "
             f"than {HARM:.0%} above plain training's) on {meta['harmful']}; weights bit-identical to plain training "
             f"on {meta['bit_identical']} of {len(controls)}.", "",
             "| control | steps | plain end loss | autotrain end loss | acted | bit-identical | time ratio |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['steps']} | {r['plain_end']} | {r['autotrain_end']} | "
              f"{'; '.join(r['rounds'][1:] + r['interventions'][:3]) if r['acted'] else 'no'} | "
              f"{'yes' if r['bit_identical'] else 'no'} | {r['time_ratio']} |" for r in controls]
    if broken:
        lines += ["", "## Broken variants", "",
                  "Healthy end loss: the control it was made from, under the same constant-rate recipe.", "",
                  "| variant | label | plain end loss | autotrain end loss | healthy end loss | what autotrain did | "
                  "time ratio |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['label']} | {r['plain_end']} | {r['autotrain_end']} | {r['healthy_end']} | "
                  f"{'; '.join(r['rounds'] + r['interventions'][:3])} | {r['time_ratio']} |" for r in broken]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run both arms on the controls and broken variants and write real-autotrain.json/.md; exit 1 when autotrain
    acted harmfully on a healthy control, or changed its weights without acting.

    >>> main(["--controls", "gpt2", "--broken", "--out", "/tmp/ra"])
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_autotrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per model (default 100)")
    parser.add_argument("--controls", nargs="*", choices=sorted(CONTROLS), metavar="NAME",
                        help="only these controls (none: no control)")
    parser.add_argument("--broken", nargs="*", choices=sorted(BROKEN), metavar="NAME",
                        help="only these broken variants (none: no variant)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for real-autotrain.json/.md")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as benchmarks.real)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    control_names = list(CONTROLS) if args.controls is None else args.controls
    broken_names = list(BROKEN) if args.broken is None else args.broken
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    controls, broken, healthy_end = [], [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the transformers configs' notes
        for name in control_names:
            control = CONTROLS[name]
            controls.append(compare(name, control, min(control.steps or args.steps, args.steps)))
            healthy_end[name] = controls[-1]["plain_end"]
            print(f"{name}: acted {controls[-1]['acted']}, bit-identical {controls[-1]['bit_identical']}", flush=True)
        for name in broken_names:
            variant = BROKEN[name]
            row = compare(name, variant.control, args.steps)
            row["label"] = variant.label
            row["healthy_end"] = healthy_end.get(variant.healthy.name) or _rounded(
                plain(variant.healthy, [variant.healthy.batch(step) for step in range(args.steps)])[1])
            broken.append(row)
            print(f"{name}: plain {row['plain_end']}, autotrain {row['autotrain_end']}, healthy {row['healthy_end']}",
                  flush=True)
    meta = {"command": " ".join(["python -m benchmarks.real_autotrain", *argv]),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
            "transformers": transformers.__version__, "threads": args.threads, "steps": args.steps,
            "seconds": time.perf_counter() - started, "acted": sum(r["acted"] for r in controls),
            "harmful": sum(r["harmful"] for r in controls), "bit_identical": sum(r["bit_identical"] for r in controls)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real-autotrain.json").write_text(json.dumps({"meta": meta, "controls": controls, "broken": broken},
                                                             indent=1))
    (args.out / "real-autotrain.md").write_text(markdown(meta, controls, broken))
    print(f"written: {args.out / 'real-autotrain.json'} and .md; acted on {meta['acted']} of {len(controls)} "
          f"healthy controls, harmfully on {meta['harmful']}")
    return 1 if meta["harmful"] or meta["bit_identical"] + meta["acted"] < len(controls) else 0


def _end(losses: list[torch.Tensor]) -> float:
    tail = torch.stack(losses[-END_STEPS:]).float()
    return float(tail.mean()) if torch.isfinite(tail).all() else math.nan


def _rounded(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


if __name__ == "__main__":
    raise SystemExit(main())
