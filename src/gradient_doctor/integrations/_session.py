"""One watched fit driven by a framework's hooks: the part the Lightning and Hugging Face callbacks share.

    >>> session = Session(log_dir="runs/a", diagnose_on=("epoch_end", "fit_end"), on_finding="warn", options={},
    ...                   stop_on=())             # kinds that raise gd.TrainingStopped at a diagnosis
    >>> session.start(model, optimizer)      # fit begins: gd.watch(model, optimizer, ...)
    >>> session.gradients_ready()            # after backward (AMP-unscaled), before clipping and the step
    >>> session.step_due()                   # (instead, where the optimizer's own hooks take the gradients)
    >>> session.batch_end(loss, accuracy=a)  # the step's loss (its batches' sum) and metrics, or `skipped` counted
    >>> session.report_loss(0.71)            # a loss reported after the step (the Trainer's on_log)
    >>> session.diagnose("epoch_end")        # reports findings per `on_finding`
    >>> session.close()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..diagnose.finding import KINDS, Finding
from ..diagnose.live import LiveMonitor
from ..errors import InvalidValue
from ..record import RunRecord
from ..watch import watch

WHEN = ("epoch_end", "fit_end")
OnFinding = str | Callable[[Finding], object]


class Session:
    """The run of one fit, its step bookkeeping, and the diagnosis at epoch and fit end."""

    def __init__(self, log_dir: str | Path | None, diagnose_on: Iterable[str], on_finding: OnFinding,
                 options: dict[str, Any], stop_on: Iterable[str] = ()):
        self.diagnose_on = frozenset((diagnose_on,) if isinstance(diagnose_on, str) else diagnose_on)
        unknown = sorted(self.diagnose_on - set(WHEN))
        if unknown:
            raise InvalidValue(f"diagnose_on takes {list(WHEN)}; got {unknown}")
        self.monitor = _monitor(on_finding, stop_on)
        self.log_dir = log_dir
        self.options = options
        self.run: RunRecord | None = None
        self._stepped = False
        self._due = False
        self._loss: torch.Tensor | None = None  # on device: the losses of the batches since the last step
        self._handle = None

    def start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> RunRecord:
        self.close()
        self._stepped, self._due, self._loss = False, False, None
        self.run = watch(model, optimizer, log_dir=self.log_dir, **self.options)
        self._handle = optimizer.register_step_post_hook(self._on_step)
        return self.run

    def _on_step(self, *_) -> None:
        self._stepped = True  # a GradScaler that skips the step, or a micro-batch of an accumulation, never gets here

    def gradients_ready(self) -> None:
        """The step's gradients are final: take their statistics now; the step is due."""
        if self.run is not None:
            self.run.take_gradients()
        self.step_due()

    def step_due(self) -> None:
        """The optimizer step is due now (accumulation is over): if it does not happen, it was skipped."""
        self._due = True

    def batch_end(self, loss: torch.Tensor | float | None = None, **metrics: Any) -> None:
        """After a batch: the losses of the batches since the last step, summed on the device (no sync),
        attach to the optimizer step this batch ended, with this batch's `metrics`; a due step that did not
        happen (a GradScaler found inf/NaN) is counted as `skipped`; otherwise the batch is a micro-batch of an
        accumulation.

        Lightning divides each micro-batch's loss by `accumulate_grad_batches`: their sum is the mean.
        """
        if self.run is None:
            return
        if loss is not None:
            loss = loss.detach() if isinstance(loss, torch.Tensor) else loss
            self._loss = loss if self._loss is None else self._loss + loss
        if self._stepped:
            self.run.step(loss=self._loss, **metrics)
        elif self._due:
            self.run.mark_skipped()
        else:
            return
        self._stepped, self._due, self._loss = False, False, None

    def report_loss(self, loss: float) -> None:
        """A loss the framework reports after the step (the HF Trainer's logged mean since its previous log): it
        attaches to the step recorded last."""
        if self.run is not None:
            self.run.step(loss=loss)

    def diagnose(self, when: str) -> None:
        """Diagnose the whole record at `when` if asked; warnings/critical findings go to `on_finding`."""
        if self.run is not None and when in self.diagnose_on:
            self.monitor.check(self.run)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.run is not None:
            self.run.close()


def _monitor(on_finding: OnFinding, stop_on: Iterable[str]) -> LiveMonitor:
    """"warn": a RuntimeWarning per new finding; "raise": gd.TrainingStopped at the first; a callable: called too.
    A kind in `stop_on` raises gd.TrainingStopped in any case."""
    if on_finding == "warn":
        monitor = LiveMonitor(None, stop_on, 1)
    elif on_finding == "raise":
        monitor = LiveMonitor(None, KINDS, 1)
    elif callable(on_finding):
        monitor = LiveMonitor(on_finding, stop_on, 1)
    else:
        raise InvalidValue(f'on_finding must be "warn", "raise" or a callable (finding) -> None; got {on_finding!r}')
    monitor.window = None  # at epoch and fit end: the whole record
    return monitor
