"""`gd.watch`: per-layer gradient, update and activation statistics during training, sync-free.

    >>> with gd.watch(model, optimizer=opt, log_dir="runs/a") as run:
    ...     for x, y in loader:
    ...         opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    >>> print(run.summary())
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    import matplotlib.figure
    import rich.table

from ._version import __version__
from .diagnose import Diagnosis
from .diagnose.finding import Finding
from .diagnose.live import LiveMonitor
from .diagnose.run.window import diagnose
from .errors import InvalidType, InvalidValue
from .probe import SATURATION_EPS, Cadence, Probe
from .probe.distributed import from_writer, is_writer
from .probe.keras_layers import backend_hint
from .record import LayerInfo, ParamInfo, RunRecord, RunStore
from .record.store import as_path
from .report.plots import plot
from .report.terminal import summary_table
from .treat.guard import ActiveGuard, Guard, guard_options


class Run(RunRecord):
    """One training run: its record (`RunRecord`: steps, layers, `history`, `to_pandas`) with the views users read
    it through. Live from `gd.watch`, read-only from `gd.load`.

    >>> run = gd.load("runs/a")
    >>> run.diagnose().findings, run.plot("grad_flow", "flow.png")
    """

    guard: ActiveGuard | None = None  # the in-loop guard of a live run watched with guard=True

    def step(self, loss: Any = None, **metrics: Any) -> None:
        super().step(loss, **metrics)
        if self.guard is not None and loss is not None:
            self.guard.on_loss(loss)

    def summary(self) -> "rich.table.Table":
        """A rich table of the latest recorded values per layer: `print(run.summary())` shows it as text, as wide as
        the terminal; `rich.print(run.summary())` in colour."""
        return summary_table(self)

    def plot(self, kind: str, path: str | Path | None = None) -> "matplotlib.figure.Figure":
        """A matplotlib Figure of `kind` ("grad_flow", "heatmap", "update_ratio", "saturation", "dead", "loss",
        "ridge"), also written as PNG to `path` when given: `run.plot("grad_flow", "flow.png")`. Needs
        `pip install 'gradient-doctor[plots]'`."""
        return plot(self, kind, path)

    def diagnose(self, window: int | None = None) -> Diagnosis:
        """Findings over the last `window` steps (all when None), from the record alone: `run.diagnose().findings`.

        Equal to `gd.diagnose(gd.load(log_dir))` of the same record. Rules and thresholds: docs/diagnose.md.
        """
        return diagnose(self, window)


def load(log_dir: str | Path) -> Run:
    """Reopen a recorded run read-only (safe in another process, even while it trains), as a snapshot: the steps
    recorded when it was loaded (load again to see later ones).

    >>> run = gd.load("runs/a")
    >>> run.history("grad_norm", layer="0")
    """
    return Run(RunStore.open_readonly(log_dir))


def watch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    log_dir: str | Path | None = None,
    every: int = 1,
    detail_every: int = 50,
    update_every: int = 50,
    activation_every: int = 50,
    activations: bool = True,
    flush_every: int = 100,
    resume: bool = False,
    overwrite: bool = False,
    saturation_eps: float = SATURATION_EPS,
    on_finding: Callable[[Finding], object] | None = None,
    stop_on: Iterable[str] = (),
    check_every: int | None = None,
    tensorboard: str | Path | None = None,
    live: bool = False,
    guard: bool | Guard = False,
) -> Run:
    """Watch `model` while it trains; returns a live `Run` (a context manager; or call `run.close()`).

    Steps are counted by `optimizer.step()` when an optimizer is given (gradient statistics are
    taken on the gradients it is about to apply: accumulated, unscaled by a GradScaler, and with
    `optimizer.step(closure)` (LBFGS) those of the closure's first evaluation), else by
    `run.step()`. Cadences (0 switches a group off): gradient norms and non-finite counts every
    `every` steps (one pass over each gradient); max |g|, zero fractions and weight norms every
    `detail_every` steps; update norms ‖Δw‖ every `update_every` steps (exact for parameters of up to 4,096
    entries, from a fixed systematic sample of 4,096 entries for larger ones: see `probe/gradients.py`);
    activation statistics every `activation_every`.
    Buffered steps are written to `log_dir` (SQLite, crash-safe) every `flush_every` steps with one
    device→host transfer; without `log_dir` the record lives in memory. A `log_dir` that already holds a record is
    an error unless `resume=True` (append to it, steps continuing) or `overwrite=True` (delete it and start over:
    a script you re-run).

    Live checks: with `on_finding` and/or `stop_on` (finding kinds, e.g. {"non_finite"}), the run is
    diagnosed every `check_every` steps (default `flush_every`; each check is a flush); each new
    warning/critical finding warns once and is passed to `on_finding`; a kind in `stop_on` raises
    `gd.TrainingStopped` out of the next `optimizer.step()`. See `diagnose/live.py`.

    Live views (on the writing rank only): `tensorboard=logdir` writes each flush's new steps as TensorBoard
    events (the `[tensorboard]` extra; per-layer scalars at the detail cadence, loss every step; on resume from
    the first new step; see `report/tensorboard.py`); `live=True` draws a rich panel of the
    layers' gradient bars and recent findings, redrawn at most twice a second from the record (`report/live.py`).

    `guard=True` (or `gd.Guard(...)` for its settings) acts in the loop and records each action in
    `run.interventions`: an update with inf/NaN gradients is skipped, a gradient-norm spike against the run's own
    running level is clipped to that level, and a loss that diverges (fed by `run.step(loss=...)`) rolls the model
    and optimizer back to the last good state with a lower learning rate. See `treat/guard.py` for the rules and
    their cost (two numbers read to the host per step).
    """
    if not isinstance(model, nn.Module):
        raise InvalidType(f"gd.watch expects a torch.nn.Module as `model`, got {type(model).__name__}: {model!r:.80}"
                          f"{backend_hint(model)}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise InvalidType(
            f"gd.watch expects a torch.optim.Optimizer (or None) as `optimizer`, got {type(optimizer).__name__}"
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise InvalidValue(
            f"gd.watch: {type(model).__name__} has no trainable parameters (none with requires_grad=True); "
            "there is no gradient to watch."
        )
    _check_period("every", every, allow_zero=False)
    _check_period("detail_every", detail_every)
    _check_period("update_every", update_every)
    _check_period("activation_every", activation_every)
    _check_period("flush_every", flush_every, allow_zero=False)
    _check_options(model, optimizer, log_dir, resume, activations, saturation_eps, overwrite)
    monitor = None
    if on_finding is not None or stop_on or check_every is not None:
        monitor = LiveMonitor(on_finding, stop_on, flush_every if check_every is None else check_every)

    guarding = guard_options(guard)
    if guarding is not None and optimizer is None:
        raise InvalidValue("gd.watch: guard=True needs the optimizer (gd.watch(model, optimizer, guard=True)): the "
                           "guard acts on optimizer.step()")
    _check_views(tensorboard, live)  # on every rank, before anything is written: a bad value fails everywhere
    # distributed (DDP/FSDP): call watch on every rank; rank 0 writes log_dir, the others keep memory
    store = RunStore.create(log_dir if is_writer() else None, resume=resume, overwrite=overwrite)
    try:
        first_step = 0
        if resume and store.last_step() is not None:
            first_step = store.last_step() + 1
        if resume:  # every rank counts steps from rank 0's record: they measure the same steps
            first_step = from_writer(first_step)
        cadence = Cadence(
            every, detail_every, update_every if optimizer is not None else 0, activation_every if activations else 0
        )
        probe = Probe(
            model, optimizer, cadence=cadence, activations=activations,
            saturation_eps=saturation_eps, first_step=first_step,
        )
        store.write_header(_meta(model, cadence, flush_every, saturation_eps), *_describe(probe))
        # last, once nothing else can fail: a writer made earlier would leak its thread and events file
        listeners = _live_views(tensorboard, live, first_step, detail_every or 50) if is_writer() else []
    except BaseException:
        store.discard()  # a failed start leaves no record behind: the retry on this log_dir works
        raise
    probe.attach()
    run = Run(store, probe, flush_every=flush_every)
    if guarding is not None:
        run.guard = ActiveGuard(guarding, probe, run.note_intervention)
        probe.on_gradients = run.guard.on_gradients
    if monitor is not None:
        run.attach_monitor(monitor)
    for listener in listeners:
        run.add_listener(listener)
    return run


def _check_views(tensorboard: str | Path | None, live: bool) -> None:
    """The live-view arguments are valid, and the `[tensorboard]` extra is there when asked for."""
    if not isinstance(live, bool):
        raise InvalidType(f"gd.watch: live must be True or False, got {type(live).__name__}")
    if tensorboard is not None:
        if not isinstance(tensorboard, (str, os.PathLike)):
            raise InvalidType(f"gd.watch: tensorboard must be a directory (str or Path) or None, "
                            f"got {type(tensorboard).__name__}")
        if Path(tensorboard).exists() and not Path(tensorboard).is_dir():
            raise InvalidValue(f"gd.watch: tensorboard must be a directory, got {str(tensorboard)!r}, a file")
        from .report.tensorboard import require_tensorboard

        require_tensorboard()


def _live_views(tensorboard: str | Path | None, live: bool, first_step: int, layer_every: int) -> list:
    """The run listeners asked for: the live terminal panel and/or a TensorBoard writer from `first_step` on,
    writing per-layer gradient norms every `layer_every` steps (the detail cadence)."""
    views = []
    if live:
        from .report.live import LivePanel

        views.append(LivePanel())
    if tensorboard is not None:  # last: it opens an events file and a writer thread
        from .report.tensorboard import TensorBoardListener

        views.append(TensorBoardListener(tensorboard, first_step=first_step, layer_every=layer_every))
    return views


def _check_options(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, log_dir: object, resume: object, activations: object,
    saturation_eps: object, overwrite: object = False,
) -> None:
    """The options that are neither a cadence nor a view are usable, and the optimizer trains this model."""
    if log_dir is not None:
        as_path(log_dir, "gd.watch: log_dir")
    for name, flag in (("resume", resume), ("activations", activations), ("overwrite", overwrite)):
        if not isinstance(flag, bool):
            raise InvalidType(f"gd.watch: {name} must be True or False, got {type(flag).__name__}: {flag!r:.40}")
    if resume and overwrite:
        raise InvalidValue("gd.watch: resume=True appends to the record in log_dir and overwrite=True deletes it; "
                           "pass one of them, not both")
    eps = f"a number in (0, 0.5): the fraction of an activation's output range next to each bound that counts as " \
          f"saturated (default {SATURATION_EPS})"
    if isinstance(saturation_eps, bool) or not isinstance(saturation_eps, (int, float)):
        raise InvalidType(f"gd.watch: saturation_eps must be {eps}; got {type(saturation_eps).__name__}: "
                          f"{saturation_eps!r:.40}")
    if not 0 < saturation_eps < 0.5:  # also NaN
        raise InvalidValue(f"gd.watch: saturation_eps must be {eps}; got {saturation_eps!r}")
    lazy = [name for name, p in model.named_parameters() if isinstance(p, nn.parameter.UninitializedParameter)]
    if lazy:
        raise InvalidValue(f"gd.watch: {type(model).__name__} has lazy parameters not materialised yet ({lazy[0]}, "
                           f"{len(lazy)} in all): run one forward pass first, then call gd.watch")
    if optimizer is not None:
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not any(id(p) in held for p in model.parameters()):
            raise InvalidValue(
                f"gd.watch: the optimizer ({type(optimizer).__name__}) holds none of {type(model).__name__}'s "
                f"{len(list(model.parameters()))} parameter tensors: it trains another model. Pass the optimizer "
                "built from this model's parameters."
            )


def _check_period(name: str, value: int, *, allow_zero: bool = True) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidValue(f"gd.watch: {name} must be an integer ≥ {low}, got {value!r}")


def _describe(probe: Probe) -> tuple[list[LayerInfo], list[ParamInfo]]:
    layers = [
        LayerInfo(
            i, layer.name, layer.kind,
            None if layer.activation is None else type(layer.module).__name__,
            i, sum(probe.params[p].tensor.numel() for p in layer.params),
        )
        for i, layer in enumerate(probe.layers)
    ]
    params = [
        ParamInfo(i, p.name, tuple(p.tensor.shape), p.tensor.numel(), p.tensor.requires_grad, tuple(p.layers))
        for i, p in enumerate(probe.params)
    ]
    return layers, params


def _meta(model: nn.Module, cadence: Cadence, flush_every: int, saturation_eps: float) -> dict[str, str]:
    config = {
        "every": cadence.every, "detail_every": cadence.detail_every, "update_every": cadence.update_every,
        "activation_every": cadence.activation_every, "flush_every": flush_every,
        "saturation_eps": saturation_eps,
    }
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "library_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "model": type(model).__name__,
        "config": json.dumps(config),
    }

