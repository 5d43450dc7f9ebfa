"""The demo: the whole story of the vanishing gradient problem on MNIST-1D, in one run on a laptop.

    >>> run_demo(steps=1500)          # what `gradient-doctor demo` runs

1. `gd.checkup` a deep sigmoid MLP on one batch: where the gradient is lost, before any training.
2. Train it under `gd.watch`: the lower layers' gradients and relative updates stay orders of magnitude below
   the upper layers' (the seeds' "the parameters of the lower layers barely change").
3. `run.diagnose()` from the record: the finding, the layers, the ranked remedies.
4. `gd.treat` the model at its initial weights with those remedies, each verified by checkup on the batch.
5. Retrain the treated model with the same budget under `gd.watch`, and compare test accuracy.
6. Write offline HTML reports of both runs and of the treatment into `out` (./gradient-doctor-demo by default; a
   re-run overwrites them) and print their paths as the last lines.

Off a terminal (a log, CI) training prints a progress line every tenth of its steps instead of a live bar.
MNIST-1D (Greydanus 2020) is generated locally (lab/datasets.py): nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch import nn

from .._console import text_width
from ..diagnose import Diagnosis, checkup
from ..errors import InvalidValue
from ..report import report
from ..treat import Treatment, treat
from ..watch import load, watch
from .datasets import Split, mnist1d
from .tasks import plain_mlp

DEPTH, WIDTH, BATCH = 12, 100, 128
#: Where the demo writes its run records and reports unless told otherwise: under the current directory, so they
#: are easy to find, and the same place every time, so a re-run replaces them instead of piling up.
DEFAULT_OUT = "gradient-doctor-demo"
#: Progress lines printed per training run when the output is not a terminal.
PROGRESS_LINES = 10


@dataclass
class DemoResult:
    name: str
    log_dir: Path
    accuracy: float
    gradient_ratio: float  # median over steps of ‖g‖ lowest hidden linear layer / highest hidden linear layer
    update_ratio: float  # the same for the relative update ‖Δw‖/‖w‖


@dataclass
class Demo:
    untreated: DemoResult
    treated: DemoResult
    treatment: Treatment
    diagnosis: Diagnosis
    reports: list[Path]


def run_demo(steps: int = 1500, out: str | Path | None = None, seed: int = 0, console: Console | None = None) -> Demo:
    """Check, train, diagnose, treat and retrain a deep sigmoid MLP on MNIST-1D; print each stage; write reports
    into `out` (default ./gradient-doctor-demo, replaced on a re-run) and print their paths last."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidValue(f"demo: steps must be a positive int (training steps per model); got {steps!r}")
    console = console or Console(width=text_width())
    base = Path(out if out is not None else DEFAULT_OUT)
    data = mnist1d()
    torch.manual_seed(seed)
    model = _sigmoid_mlp(data)
    initial = copy.deepcopy(model)
    batch = (data.x_train[:256], data.y_train[:256])
    loss_fn = nn.CrossEntropyLoss()
    console.rule(f"gradient-doctor demo: a {DEPTH}-layer sigmoid MLP on MNIST-1D, {steps} SGD steps")

    console.print(_findings_table("1. gd.checkup before training (one batch, weights untouched)",
                                  [("sigmoid MLP", checkup(model, *batch, loss_fn))]))
    untreated = _train("sigmoid MLP", model, data, steps, base / "untreated", console, seed)
    run = load(untreated.log_dir)
    console.print("2. trained under gd.watch: per-layer gradients (log scale), latest recorded step")
    console.print(run.summary())
    diagnosis = run.diagnose()
    console.print(_findings_table("3. run.diagnose() from the record", [("sigmoid MLP", diagnosis)]))

    treatment = treat(initial, diagnosis, *batch, loss_fn, seed=seed)
    console.print("4. gd.treat at the initial weights, each remedy verified by checkup on the batch")
    console.print(treatment)
    treated = _train("treated MLP", treatment.model, data, steps, base / "treated", console, seed)
    console.print(_verdict([untreated, treated], steps))
    reports = [report(load(untreated.log_dir), base / "untreated.html"),
               report(load(treated.log_dir), base / "treated.html"),
               report(treatment, base / "treatment.html")]
    command = _command()
    console.print(f"run records: {_shown(untreated.log_dir)} and {_shown(treated.log_dir)} "
                  f"(see one with `{command} show {_shown(untreated.log_dir)}`)", soft_wrap=True, highlight=False)
    console.print("6. reports (offline HTML, open them in a browser):", highlight=False)
    for path in reports:
        console.print(f"  {_shown(path)}", soft_wrap=True, highlight=False, markup=False)
    return Demo(untreated, treated, treatment, diagnosis, reports)


def _command() -> str:
    """How to call the tool from this shell: `gradient-doctor` when it is on PATH, else the path of the one
    running (e.g. `.venv/bin/gradient-doctor`), else `python -m gradient_doctor`."""
    if shutil.which("gradient-doctor"):
        return "gradient-doctor"
    script = Path(sys.argv[0])
    if script.name == "gradient-doctor" and script.is_file():
        return str(_shown(script))
    return f"{_shown(Path(sys.executable))} -m gradient_doctor"


def _shown(path: Path) -> Path:
    """`path` relative to the current directory when it lies under it (short, and what a user typed), else as is."""
    try:
        return Path(os.path.relpath(path.resolve(), Path.cwd())) if path.resolve().is_relative_to(Path.cwd()) \
            else path
    except (OSError, ValueError):
        return path


def _sigmoid_mlp(data: Split) -> nn.Sequential:
    """DEPTH Linear layers with sigmoids between them, PyTorch's default init: the textbook vanishing case."""
    return plain_mlp(DEPTH, WIDTH, nn.Sigmoid, out=int(data.y_train.max()) + 1, inputs=data.x_train.shape[1])


def _train(name: str, model: nn.Module, data: Split, steps: int, log_dir: Path, console: Console,
           seed: int) -> DemoResult:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    with _progress(console, f"training the {name}", steps) as tick, \
            watch(model, optimizer, log_dir=log_dir, overwrite=True, detail_every=5, update_every=5,
                  activation_every=25) as run:
        for step in range(steps):
            rows = torch.randint(0, len(data.x_train), (BATCH,), generator=generator)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(data.x_train[rows]), data.y_train[rows])
            loss.backward()
            optimizer.step()
            run.step(loss=loss)
            tick(step, loss)
    with torch.no_grad():
        accuracy = (model(data.x_test).argmax(dim=1) == data.y_test).float().mean().item()
    linear = [i for i, info in enumerate(run.layer_details) if info.kind == "Linear"]
    first, last = linear[0], linear[-2]  # lowest vs highest hidden layer
    grads = run.history("grad_norm")
    updates = run.history("update_norm") / run.history("weight_norm")
    return DemoResult(name, log_dir, accuracy, float(np.nanmedian(grads[:, first] / grads[:, last])),
                      float(np.nanmedian(updates[:, first] / updates[:, last])))


@contextlib.contextmanager
def _progress(console: Console, what: str, total: int) -> Iterator[Callable[[int, torch.Tensor], None]]:
    """A `tick(step, loss)` that advances a live bar on a terminal, and elsewhere (a log, CI) prints a line every
    tenth of `total` steps, so a long run is never silent."""
    if console.is_terminal:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(what, total=total)
            yield lambda step, loss: progress.advance(task)
        return
    start, every = time.monotonic(), max(1, total // PROGRESS_LINES)

    def tick(step: int, loss: torch.Tensor) -> None:
        if (step + 1) % every == 0 or step + 1 == total:
            console.print(f"  {what}: step {step + 1}/{total}, loss {loss.item():.3f}, "
                          f"{time.monotonic() - start:.0f} s", highlight=False)

    yield tick


def _findings_table(title: str, diagnoses: list[tuple[str, Diagnosis]]) -> Table:
    """One row per model: its warning/critical findings with their top remedies, or "healthy"."""
    table = Table(title=title, title_justify="left")
    table.add_column("model")
    table.add_column("findings → first remedies")
    for name, diagnosis in diagnoses:
        findings = "\n".join(
            f"{f.severity} {f.kind} → {', '.join(f.remedies[:2])}" for f in diagnosis.findings if f.severity != "info"
        )
        table.add_row(name, findings or "healthy")
    return table


def _verdict(results: list[DemoResult], steps: int) -> Table:
    table = Table(title=f"5. same budget ({steps} steps): lowest vs highest hidden layer (median over steps)",
                  title_justify="left")
    for column in ("model", "‖g‖ first/last", "relative update first/last", "test accuracy"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for r in results:
        table.add_row(r.name, f"{r.gradient_ratio:.2e}", f"{r.update_ratio:.2e}", f"{100 * r.accuracy:.1f} %")
    return table
