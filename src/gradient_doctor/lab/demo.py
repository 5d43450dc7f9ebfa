"""The demo: a deep sigmoid MLP checked by `gd.checkup`, then trained under `gd.watch`, next to the
same depth with ReLU + He init.

    >>> run_demo(steps=400)          # what `gradient-doctor demo` runs

The task is synthetic and seeded (a random teacher network labels Gaussian inputs into 4 classes),
so it runs anywhere in seconds with nothing downloaded. It shows the textbook sign of the vanishing
gradient problem: the lower layers' gradients and relative updates are orders of magnitude below
the upper layers', and the deep sigmoid net learns little in the same budget.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch import nn

from ..diagnosis import Diagnosis, checkup
from ..record import load
from ..watch import watch

DEPTH, WIDTH, FEATURES, CLASSES = 10, 64, 32, 4


@dataclass
class DemoResult:
    name: str
    log_dir: Path
    accuracy: float
    gradient_ratio: float  # median over steps of ‖g‖ first linear layer / last linear layer
    update_ratio: float  # median of (‖Δw‖/‖w‖) first linear layer / last linear layer


def teacher_task(seed: int, n_train: int = 4096, n_test: int = 2048) -> tuple[torch.Tensor, ...]:
    """Gaussian inputs labelled by a random two-layer tanh teacher (4 classes, roughly balanced)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, FEATURES, generator=generator)
    hidden = torch.tanh(x @ torch.randn(FEATURES, 64, generator=generator) / FEATURES**0.5)
    logits = hidden @ torch.randn(64, CLASSES, generator=generator)
    y = logits.argmax(dim=1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def deep_mlp(activation: type[nn.Module], he_init: bool, seed: int) -> nn.Sequential:
    """DEPTH hidden layers of WIDTH units; PyTorch's default init unless `he_init`."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width_in = FEATURES
    for _ in range(DEPTH):
        linear = nn.Linear(width_in, WIDTH)
        if he_init:
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear, activation()]
        width_in = WIDTH
    layers.append(nn.Linear(width_in, CLASSES))
    return nn.Sequential(*layers)


def train_watched(name: str, model: nn.Module, data: tuple, steps: int, log_dir: Path, progress: Progress, seed: int) -> DemoResult:
    x_train, y_train, x_test, y_test = data
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    task = progress.add_task(name, total=steps)
    with watch(model, optimizer, log_dir=log_dir, detail_every=1, update_every=1, activation_every=5) as run:
        for _ in range(steps):
            batch = torch.randint(0, len(x_train), (128,), generator=generator)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            run.step(loss=loss)
            progress.advance(task)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    linear = [i for i, info in enumerate(run.layer_details) if info.kind == "Linear"]
    first, last = linear[0], linear[-2]  # lowest hidden layer vs highest hidden layer
    grads = run.history("grad_norm")
    updates = run.history("update_norm") / run.history("weight_norm")
    return DemoResult(
        name, log_dir, accuracy,
        float(np.nanmedian(grads[:, first] / grads[:, last])),
        float(np.nanmedian(updates[:, first] / updates[:, last])),
    )


def run_demo(steps: int = 400, out: str | None = None, seed: int = 0, console: Console | None = None) -> list[DemoResult]:
    """Train both nets, print each run's per-layer summary and a side-by-side verdict."""
    console = console or Console()
    base = Path(out) if out else Path(tempfile.mkdtemp(prefix="gradient-doctor-demo-"))
    data = teacher_task(seed)
    nets = [
        ("sigmoid, default init", deep_mlp(nn.Sigmoid, he_init=False, seed=seed), base / "sigmoid"),
        ("relu, He init", deep_mlp(nn.ReLU, he_init=True, seed=seed), base / "relu-he"),
    ]
    console.rule(f"gradient-doctor demo: two {DEPTH}-hidden-layer MLPs, {steps} SGD steps each")
    x_check = data[0][:128]
    preflight = [(name, checkup(model, x_check)) for name, model, _ in nets]
    console.print(_findings_table("gd.checkup before training (one batch, weights untouched)", preflight))
    results = []
    with Progress(console=console, transient=True) as progress:
        for name, model, log_dir in nets:
            results.append(train_watched(name, model, data, steps, log_dir, progress, seed))
    for result in results:
        console.print(load(result.log_dir).summary())
    console.print(_verdict(results))
    diagnoses = [(result.name, load(result.log_dir).diagnose()) for result in results]
    console.print(_findings_table("run.diagnose() after training (from the records)", diagnoses))
    console.print(f"Run records: {base} (inspect with `gradient-doctor show {results[0].log_dir}`)")
    return results


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


def _verdict(results: list[DemoResult]) -> Table:
    table = Table(title="lowest vs highest hidden layer (median over steps)", title_justify="left")
    for column in ("model", "‖g‖ first/last", "relative update first/last", "test accuracy"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for r in results:
        table.add_row(r.name, f"{r.gradient_ratio:.2e}", f"{r.update_ratio:.2e}", f"{100 * r.accuracy:.1f} %")
    return table
