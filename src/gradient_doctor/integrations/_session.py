"""One watched fit driven by a framework's hooks: the part the Lightning and Hugging Face callbacks share.

    >>> session = Session(log_dir="runs/a", diagnose_on=("epoch_end", "fit_end"), on_finding="warn", options={})
    >>> session.start(model, optimizer)      # fit begins: gd.watch(model, optimizer, ...)
    >>> session.gradients_ready()            # after backward (AMP-unscaled), before clipping and the step
    >>> session.batch_end(loss)              # attaches the loss when the batch ended an optimizer step
    >>> session.diagnose("epoch_end")        # reports findings per `on_finding`
    >>> session.close()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..diagnosis.finding import KINDS, Finding
from ..diagnosis.live import LiveMonitor
from ..record import Run
from ..watch import watch

WHEN = ("epoch_end", "fit_end")
OnFinding = str | Callable[[Finding], object]


class Session:
    """The run of one fit, its step bookkeeping, and the diagnosis at epoch and fit end."""

    def __init__(self, log_dir: str | Path | None, diagnose_on: Iterable[str], on_finding: OnFinding,
                 options: dict[str, Any]):
        self.diagnose_on = frozenset((diagnose_on,) if isinstance(diagnose_on, str) else diagnose_on)
        unknown = sorted(self.diagnose_on - set(WHEN))
        if unknown:
            raise ValueError(f"diagnose_on takes {list(WHEN)}; got {unknown}")
        self.monitor = _monitor(on_finding)
        self.log_dir = log_dir
        self.options = options
        self.run: Run | None = None
        self._stepped = False
        self._handle = None

    def start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> Run:
        self.close()
        self.run = watch(model, optimizer, log_dir=self.log_dir, **self.options)
        self._handle = optimizer.register_step_post_hook(self._on_step)
        return self.run

    def _on_step(self, *_) -> None:
        self._stepped = True  # a GradScaler that skips the step, or a micro-batch of an accumulation, never gets here

    def gradients_ready(self) -> None:
        if self.run is not None:
            self.run.take_gradients()

    def batch_end(self, loss: Any = None) -> None:
        """After a batch: `loss` attaches to the optimizer step it ended (none: accumulating or skipped)."""
        if self.run is not None and self._stepped:
            self._stepped = False
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


def _monitor(on_finding: OnFinding) -> LiveMonitor:
    """"warn": a RuntimeWarning per new finding; "raise": gd.TrainingStopped at the first; a callable: called too."""
    if on_finding == "warn":
        monitor = LiveMonitor(None, (), 1)
    elif on_finding == "raise":
        monitor = LiveMonitor(None, KINDS, 1)
    elif callable(on_finding):
        monitor = LiveMonitor(on_finding, (), 1)
    else:
        raise ValueError(f'on_finding must be "warn", "raise" or a callable (finding) -> None; got {on_finding!r}')
    monitor.window = None  # at epoch and fit end: the whole record
    return monitor
