"""TensorBoard export (the `[tensorboard]` extra): `gd.to_tensorboard(run, logdir)`, and live with
`gd.watch(..., tensorboard=logdir)`.

    >>> gd.to_tensorboard(gd.load("runs/a"), "tb/a")     # then: tensorboard --logdir tb
    >>> with gd.watch(model, opt, tensorboard="tb/a") as run: ...

Scalars: every per-layer metric as `METRIC/LAYER` (e.g. `grad_norm/fc1`), the update/weight ratio as
`update_ratio/LAYER`, and run-level metrics (`loss`, yours) under their names, at each step they were
measured (NaN = not measured: skipped). Histograms: `grad_norm_log10` per step at the detail cadence
(where `grad_max` was measured: every 50th step by default), the distribution of log10 ‖g‖ across the
layers — how far apart the layers' gradient scales are. The record keeps no per-entry gradient
histograms, so none are invented here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..probe.metrics import LAYER_METRICS
from .data import measured

if TYPE_CHECKING:
    from ..record import Run


def to_tensorboard(run: "Run", logdir: str | Path) -> Path:
    """Write `run`'s record as TensorBoard events under `logdir`; returns it."""
    writer = _writer(logdir)
    try:
        write_steps(writer, run)
    finally:
        writer.close()
    return Path(logdir)


def _writer(logdir: str | Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("TensorBoard export needs the tensorboard package: "
                          "pip install 'gradient-doctor[tensorboard]'") from err
    return SummaryWriter(log_dir=str(logdir))


def write_steps(writer, run: "Run", since: int | None = None) -> int | None:
    """Write the steps ≥ `since` (all when None) to a SummaryWriter; returns the last step written (None if none)."""
    steps = run.steps if since is None else run.steps[run.steps >= since]
    if len(steps) == 0:
        return None
    tags = [name or "(model)" for name in run.layers]
    per_layer = {metric: run.history(metric, since=since) for metric in LAYER_METRICS}
    with np.errstate(divide="ignore", invalid="ignore"):
        per_layer["update_ratio"] = per_layer["update_norm"] / per_layer["weight_norm"]
    for metric, values in per_layer.items():
        for i, j in zip(*np.nonzero(~np.isnan(values))):
            writer.add_scalar(f"{metric}/{tags[j]}", float(values[i, j]), int(steps[i]))
    for name in run.metrics:
        if name not in LAYER_METRICS:
            values = run.history(name, since=since)
            for i in np.flatnonzero(~np.isnan(values)):
                writer.add_scalar(name, float(values[i]), int(steps[i]))
    grad = per_layer["grad_norm"]
    for i in np.flatnonzero(measured(per_layer["grad_max"])):
        row = grad[i][np.isfinite(grad[i]) & (grad[i] > 0)]
        if row.size:
            writer.add_histogram("grad_norm_log10", np.log10(row), int(steps[i]))
    return int(steps[-1])


class TensorBoardListener:
    """A run listener (see `Run.add_listener`) that writes each flush's new steps as TensorBoard events."""

    def __init__(self, logdir: str | Path):
        self.writer = _writer(logdir)
        self._next: int | None = None

    def due(self) -> bool:
        return False  # follows the run's own flushes

    def flushed(self, run: "Run") -> None:
        last = write_steps(self.writer, run, self._next)
        if last is not None:
            self._next = last + 1
            self.writer.flush()

    def close(self, run: "Run") -> None:
        self.flushed(run)
        self.writer.close()
