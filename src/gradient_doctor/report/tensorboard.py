"""TensorBoard export (the `[tensorboard]` extra): `gd.to_tensorboard(run, logdir)`, and live with
`gd.watch(..., tensorboard=logdir)`.

    >>> gd.to_tensorboard("runs/a", "tb/a")     # a Run or its log_dir; then: tensorboard --logdir tb
    >>> with gd.watch(model, opt, tensorboard="tb/a") as run: ...

Scalars: per-layer metrics as `METRIC/LAYER` (e.g. `grad_norm/fc1`), the update/weight ratio as
`update_ratio/LAYER`, and run-level metrics (`loss`, yours) under their names, at the steps they were
measured (NaN = not measured: skipped). `nonfinite/LAYER` only where it is > 0. The per-step gradient
group (`grad_norm`) is written every `layer_every` steps: every step in an export, and live at the
detail cadence (`watch(detail_every=...)`, 50 by default), where the other per-layer metrics come too;
`loss` and your metrics every step. Each step's scalars go out as one event (one record for all tags), so
writing costs a few µs per value, not the ~90 µs of one `add_scalar` call. Histograms:
`grad_log10_hist/LAYER` at each detail step, the recorded histogram of log10 |g| over the layer's gradient
entries (`run.gradient_histograms()`: half-decade bins; exact zeros and inf/NaN entries are in no bin).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..probe.metrics import GRADIENT, LAYER_METRICS
from ..record import RunRecord, load
from ..record.histograms import GradientHistograms
from .data import update_ratio

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


def to_tensorboard(run: RunRecord | str | Path, logdir: str | Path) -> Path:
    """>>> gd.to_tensorboard(gd.load("runs/a"), "tb/a")
    >>> gd.to_tensorboard("runs/a", "tb/a")          # the same, from the log_dir

    Write a run's record (a `Run` or its log_dir) as TensorBoard events under `logdir`; returns it.
    """
    writer = writer_for(logdir)
    try:
        write_steps(writer, load(run) if isinstance(run, (str, Path)) else run)
    finally:
        writer.close()
    return Path(logdir)


def writer_for(logdir: str | Path) -> "SummaryWriter":
    """A SummaryWriter on `logdir` (creates its events file), or an ImportError naming the extra."""
    return require_tensorboard()(log_dir=str(logdir))


def require_tensorboard() -> type:
    """The SummaryWriter class; an ImportError naming the `[tensorboard]` extra when it is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("TensorBoard export needs the tensorboard package: "
                          "pip install 'gradient-doctor[tensorboard]'") from err
    return SummaryWriter


def write_steps(writer: "SummaryWriter", run: RunRecord, since: int | None = None, *, layer_every: int = 1) -> int | None:
    """Write the steps ≥ `since` (all when None), reading only those; `grad_norm/LAYER` at steps divisible by
    `layer_every`. Returns the last step written (None if none)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    steps = run.steps_since(since)
    if len(steps) == 0:
        return None
    tags = [name or "(model)" for name in run.layers]
    per_layer = {metric: run.history(metric, since=since) for metric in LAYER_METRICS}
    per_layer["update_ratio"] = update_ratio(per_layer)
    rows: list[list[Any]] = [[] for _ in steps]
    thinned = steps % layer_every != 0
    for metric, values in per_layer.items():
        keep = ~np.isnan(values)
        if metric == "nonfinite":
            keep &= values != 0
        elif metric in GRADIENT:
            keep[thinned] = False
        for i, j in zip(*np.nonzero(keep)):
            rows[i].append(Summary.Value(tag=f"{metric}/{tags[j]}", simple_value=float(values[i, j])))
    for name in run.metrics:
        if name not in LAYER_METRICS:
            values = run.history(name, since=since)
            for i in np.flatnonzero(~np.isnan(values)):
                rows[i].append(Summary.Value(tag=name, simple_value=float(values[i])))
    events = writer.file_writer
    for step, values in zip(steps, rows):
        if values:
            events.add_summary(Summary(value=values), int(step))
    for action in run.interventions:  # the guard's: guard/skipped_update etc. = 1 at the step it acted
        if since is None or action.step >= since:
            events.add_summary(Summary(value=[Summary.Value(tag=f"guard/{action.kind}", simple_value=1.0)]),
                               action.step)
    write_histograms(writer, run.gradient_histograms(since=since), tags)
    return int(steps[-1])


def write_histograms(writer: "SummaryWriter", histograms: GradientHistograms, tags: list[str]) -> None:
    """`grad_log10_hist/LAYER`: each layer's recorded histogram of log10 |g| (its filled bins) at each detail step."""
    edges = histograms.edges
    centres = (edges[:-1] + edges[1:]) / 2
    for i, step in enumerate(histograms.steps):
        for j, tag in enumerate(tags):
            counts = histograms.counts[i, j]
            filled = np.flatnonzero(np.nan_to_num(counts))
            if not filled.size:
                continue
            keep = slice(filled[0], filled[-1] + 1)
            writer.add_histogram_raw(
                f"grad_log10_hist/{tag}", min=float(edges[filled[0]]), max=float(edges[filled[-1] + 1]),
                num=float(counts.sum()), sum=float(counts @ centres), sum_squares=float(counts @ centres**2),
                bucket_limits=edges[1:][keep].tolist(), bucket_counts=counts[keep].tolist(), global_step=int(step))


class TensorBoardListener:
    """A run listener (see `Run.add_listener`) that writes each flush's new steps as TensorBoard events.

        >>> run.add_listener(TensorBoardListener("tb/a", first_step=run_first_step, layer_every=50))

    `first_step`: the first step this session records (on resume, earlier steps are already written);
    `layer_every`: the cadence of the per-step `grad_norm/LAYER` scalars (see the module's docstring).
    """

    def __init__(self, logdir: str | Path, *, first_step: int = 0, layer_every: int = 50):
        self.layer_every = layer_every
        self._next = first_step
        self.writer = writer_for(logdir)

    def due(self) -> bool:
        return False  # follows the run's own flushes

    def flushed(self, run: RunRecord) -> None:
        last = write_steps(self.writer, run, self._next, layer_every=self.layer_every)
        if last is not None:
            self._next = last + 1
            self.writer.flush()

    def close(self, run: RunRecord) -> None:
        try:
            self.flushed(run)
        finally:
            self.writer.close()
