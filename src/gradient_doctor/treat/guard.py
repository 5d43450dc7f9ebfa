"""The in-loop guard: acts on a watched run without restarting it, and records every action in the run.

    >>> with gd.watch(model, optimizer, guard=True) as run:           # or guard=gd.Guard(spike_z=8)
    ...     for x, y in loader:
    ...         opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()
    ...         run.step(loss=loss)                                    # the loss feeds the divergence check
    >>> run.interventions
    [Intervention(step=41, kind='skipped_update', detail={'nonfinite': 12.0})]

Three actions, each taken in the optimizer's step pre-hook or right after `run.step(loss=...)`:

* **skipped_update** — a gradient holds inf/NaN: every gradient is set to None before `optimizer.step()` runs, so
  the step leaves the parameters and the optimizer's state untouched (torch's optimizers skip parameters without a
  gradient), as `torch.amp.GradScaler` does.
* **clipped_spike** — the gradient norm jumps `spike_z` running standard deviations above its running mean (and
  at least `spike_ratio` times the mean): the gradient is scaled down to mean + `spike_z` std, the run's own level,
  not a fixed constant (ZClip, Kumar et al. 2025; the running mean and variance are exponential averages with
  weight `ema`, fed the clipped norm; the first `warmup` steps only build them).
* **rolled_back** — the loss diverges for `patience` checks in a row (its mean over `check_every` steps is
  non-finite, or above both twice its best and its best plus half the progress made so far): the model and the
  optimizer go back to the last good state and every learning rate is multiplied by `lr_factor`. A good state is
  kept on the host every `keep_every` steps at a check that is not diverging: one copy of the parameters, buffers
  and optimizer state in host memory (for Adam about 3x the parameters' size).

Cost: two numbers (sum of squares and non-finite count of the gradients, from the watch's own per-step norms) are
read to the host every step, like GradScaler's check; the loss once per `check_every` steps. Under DDP the
gradients are already all-reduced, under FSDP the probe sums the shards' statistics over ranks, and the loss is
averaged over ranks before a decision, so every rank takes the same action.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidType, InvalidValue
from ..probe import Probe
from ..probe.distributed import distributed

Note = Callable[..., None]  # note(step, kind, **detail): the run's note_intervention


@dataclass(frozen=True)
class Guard:
    """The guard's settings: `gd.watch(model, opt, guard=gd.Guard(spike_z=8))`; `guard=True` takes these defaults.

    >>> gd.Guard().spike_z, gd.Guard(rollback=False).rollback
    (6.0, False)
    """

    skip_nonfinite: bool = True
    spike_z: float = 6.0  # 0 switches spike clipping off
    spike_ratio: float = 10.0
    warmup: int = 50
    ema: float = 0.97
    rollback: bool = True
    check_every: int = 10
    patience: int = 3
    keep_every: int = 100
    lr_factor: float = 0.5

    def __post_init__(self) -> None:
        for name in ("skip_nonfinite", "rollback"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidType(f"gd.Guard: {name} must be True or False; got {getattr(self, name)!r}")
        for name, low, high in (("spike_z", 0.0, math.inf), ("spike_ratio", 1.0, math.inf), ("ema", 0.0, 1.0),
                                ("lr_factor", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
                    or (name in ("ema", "lr_factor") and value in (0.0, 1.0)):
                raise InvalidValue(f"gd.Guard: {name} must be a number in [{low}, {high}] "
                                   f"({'open interval' if name in ('ema', 'lr_factor') else 'closed'}); got {value!r}")
        for name, low in (("warmup", 0), ("check_every", 1), ("patience", 1), ("keep_every", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidValue(f"gd.Guard: {name} must be an integer >= {low}; got {value!r}")


def guard_options(guard: bool | Guard) -> Guard | None:
    """The settings `gd.watch(guard=...)` asks for: None (no guard), the defaults, or the Guard given.

    >>> guard_options(True) == Guard(), guard_options(False)
    (True, None)
    """
    if isinstance(guard, Guard):
        return guard
    if isinstance(guard, bool):
        return Guard() if guard else None
    raise InvalidType(f"gd.watch: guard must be True, False or a gd.Guard(...); got {type(guard).__name__}")


class ActiveGuard:
    """The guard bound to one watched run: `probe.on_gradients` calls `on_gradients`, `Run.step` calls `on_loss`.

    >>> active = ActiveGuard(Guard(), probe, run.note_intervention)
    """

    def __init__(self, options: Guard, probe: Probe, note: Note):
        if probe.optimizer is None:
            raise InvalidValue("gd.watch: guard=True needs the optimizer (gd.watch(model, optimizer, guard=True)): "
                               "it acts on optimizer.step()")
        self.options = options
        self.probe = probe
        self.note = note
        self.disabled = False
        self._seen = 0  # finite gradient norms fed to the running level
        self._mean = 0.0
        self._var = 0.0
        self._losses: list[Tensor | float] = []
        self._first: float | None = None  # the first check's mean loss
        self._best = math.inf
        self._bad_checks = 0
        self._kept: tuple[int, dict, dict] | None = None  # (step, model state, optimizer state) on the host

    # -- gradients: every step ------------------------------------------------------------
    def on_gradients(self) -> None:
        self._safely(self._check_gradients)

    def _check_gradients(self) -> None:
        squares, nonfinite = self.probe.gradient_totals()  # the one read per step
        step, options = self.probe.step, self.options
        if options.skip_nonfinite and (nonfinite > 0 or not math.isfinite(squares)):
            for group in self.probe.optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None
            self.note(step, "skipped_update", nonfinite=float(nonfinite))
            return
        if not math.isfinite(squares):
            return
        norm = math.sqrt(squares)
        if options.spike_z and self._seen >= options.warmup:
            std = math.sqrt(self._var)
            level = self._mean + options.spike_z * std
            if norm > level and norm > options.spike_ratio * self._mean and norm > 0:
                grads = [p.grad for g in self.probe.optimizer.param_groups for p in g["params"] if p.grad is not None]
                torch._foreach_mul_(grads, level / norm)
                self.note(step, "clipped_spike", norm=norm, level=level, z=(norm - self._mean) / max(std, 1e-30))
                norm = level
        self._feed(norm)

    def _feed(self, norm: float) -> None:
        """Exponential running mean and variance of the gradient norm (their plain mean over the first steps)."""
        self._seen += 1
        alpha = max(self.options.ema, 1 - 1 / self._seen)  # early on: the plain mean, not a biased EMA
        delta = norm - self._mean
        self._mean += (1 - alpha) * delta
        self._var = alpha * (self._var + (1 - alpha) * delta * delta)

    # -- the loss: every check_every steps -----------------------------------------------------
    def on_loss(self, loss: Tensor | float) -> None:
        """Called by `run.step(loss=...)` after each optimizer step."""
        if self.disabled or not self.options.rollback:
            return
        self._losses.append(loss.detach() if isinstance(loss, Tensor) else float(loss))
        if len(self._losses) >= self.options.check_every:
            self._safely(self._check_loss)

    def _check_loss(self) -> None:
        losses, self._losses = self._losses, []
        mean = _mean_over_ranks(losses)
        if self._first is None and math.isfinite(mean):
            self._first = mean
        if self._diverging(mean):
            self._bad_checks += 1
            if self._bad_checks >= self.options.patience and self._kept is not None:
                self._roll_back(mean)
            return
        self._bad_checks = 0
        self._best = min(self._best, mean)
        step = self.probe.step
        if self._kept is None or step - self._kept[0] >= self.options.keep_every:
            self._keep(step)

    def _diverging(self, mean: float) -> bool:
        if not math.isfinite(mean):
            return True
        if self._first is None or not math.isfinite(self._best):
            return False
        return mean > 2 * self._best and mean > self._best + 0.5 * (self._first - self._best)

    def _keep(self, step: int) -> None:
        model_state = {k: v.detach().to("cpu", copy=True) for k, v in self.probe.model.state_dict().items()}
        optimizer_state = _to_host(self.probe.optimizer.state_dict())
        self._kept = (step, model_state, optimizer_state)

    def _roll_back(self, mean: float) -> None:
        kept_step, model_state, optimizer_state = self._kept
        optimizer = self.probe.optimizer
        lrs = [group["lr"] * self.options.lr_factor for group in optimizer.param_groups]
        self.probe.model.load_state_dict(model_state)
        optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr
        self._bad_checks = 0
        self.note(self.probe.step - 1, "rolled_back", to_step=kept_step, loss=mean, lr=lrs[0])

    # -- never crash training ----------------------------------------------------------------
    def _safely(self, check: Callable[[], None]) -> None:
        if self.disabled:
            return
        try:
            check()
        except Exception as err:  # a guard that fails must not take the training down with it
            self.disabled = True
            if distributed():
                raise
            warnings.warn(f"gradient-doctor: the guard hit an internal error and switched itself off; training "
                          f"goes on unguarded. Error: {type(err).__name__}: {err}", RuntimeWarning, stacklevel=4)


def _mean_over_ranks(losses: list[Tensor | float]) -> float:
    """The mean of a window's losses, averaged over ranks under torch.distributed (one host read)."""
    if all(isinstance(x, Tensor) and x.dim() == 0 for x in losses) and len({(x.dtype, x.device) for x in losses}) == 1:
        mean = torch.stack(losses).double().mean()  # the common case in three kernels: the same float64 values
    else:
        tensors = [torch.as_tensor(x, dtype=torch.float64) if not isinstance(x, Tensor) else x.double().reshape(())
                   for x in losses]
        device = next((t.device for t in tensors if t.device.type != "cpu"), torch.device("cpu"))
        mean = torch.stack([t.to(device) for t in tensors]).mean()
    if distributed():
        mean = mean.clone()
        torch.distributed.all_reduce(mean)
        mean /= torch.distributed.get_world_size()
    return float(mean)


def _to_host(state: object) -> object:
    """A deep copy of an optimizer state_dict with every tensor on the host."""
    if isinstance(state, Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _to_host(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_to_host(v) for v in state)
    return copy.deepcopy(state)
