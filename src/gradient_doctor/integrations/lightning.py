"""`GradientDoctorCallback` for PyTorch Lightning (2.x): `gd.watch` attached to a `Trainer`'s fit.

    >>> from gradient_doctor.integrations.lightning import GradientDoctorCallback
    >>> trainer = L.Trainer(callbacks=[GradientDoctorCallback(log_dir="runs/a")])
    >>> trainer.fit(model, loader)          # warns on findings at each epoch end and at fit end
    >>> callback.run.history("grad_norm")   # the record, as from gd.watch

Gradient statistics are taken in `on_before_optimizer_step`: after backward (and after the AMP
plugin unscales the gradients), before Lightning clips them and steps — `optimizer.step()`'s own
pre-hook would run before Lightning's closure runs backward. Accumulated gradients
(`accumulate_grad_batches`) are seen once, as the optimizer applies them. Steps are optimizer steps.
A step's `loss` is the sum of its micro-batches' `outputs["loss"]` (each divided by
`accumulate_grad_batches` by Lightning: the mean loss of the accumulated batch), summed on the
device; when `training_step` returns no loss (manual optimization), the value logged as `train_loss`
(else `loss`) with `self.log(...)`, from `trainer.callback_metrics`. A step the AMP GradScaler skips (inf/NaN gradients) is counted: the next step records `skipped`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidValue
from ._session import OnFinding, Session

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError as err:
        raise ImportError(
            "gradient_doctor.integrations.lightning needs Lightning: pip install 'gradient-doctor[lightning]'"
        ) from err

LOGGED_METRICS = ("grad_norm", "update_norm")


class GradientDoctorCallback(Callback):
    """Watches the LightningModule during `fit`; diagnoses at `diagnose_on` ("epoch_end", "fit_end").

    `on_finding`: "warn" (a RuntimeWarning per new warning/critical finding), "raise"
    (`gd.TrainingStopped` at the first), or a callable taking each `Finding`. `log_scalars`: at
    each epoch end, log the epoch's per-layer `grad_norm` and `update_norm` through the trainer's
    loggers (`gradient_doctor/grad_norm/<layer>`, at their optimizer steps). Other keywords go to
    `gd.watch` (`every`, `detail_every`, `activation_every`, `flush_every`, ...). The run is
    `callback.run` (closed after fit; readable).
    """

    def __init__(
        self,
        log_dir: str | Path | None = None,
        *,
        diagnose_on: Iterable[str] = ("epoch_end", "fit_end"),
        on_finding: OnFinding = "warn",
        log_scalars: bool = False,
        **watch_options: Any,
    ):
        super().__init__()
        self.session = Session(log_dir, diagnose_on, on_finding, watch_options)
        self.log_scalars = log_scalars
        self._logged_until = 0  # first step not yet logged

    @property
    def run(self):
        return self.session.run

    def on_train_start(self, trainer, pl_module) -> None:
        if len(trainer.optimizers) != 1:
            raise InvalidValue(
                f"GradientDoctorCallback watches a module trained by one optimizer; this fit has "
                f"{len(trainer.optimizers)}. Use gd.watch(module, optimizer) on each part instead."
            )
        self.session.start(pl_module, trainer.optimizers[0])
        self._logged_until = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.session.gradients_ready()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):  # manual optimization: the loss the module logged
            logged = trainer.callback_metrics
            loss = logged.get("train_loss", logged.get("loss"))
        self.session.batch_end(loss if isinstance(loss, torch.Tensor) else None)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.log_scalars and self.run is not None:
            self._log(trainer)
        self.session.diagnose("epoch_end")

    def on_fit_end(self, trainer, pl_module) -> None:
        self.session.close()
        self.session.diagnose("fit_end")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.session.close()

    def _log(self, trainer) -> None:
        """Per-layer scalars of the steps recorded since the last call, at their own steps."""
        run = self.run
        steps = run.steps[run.steps >= self._logged_until]
        if not len(steps):
            return
        layers = run.layers
        series = {m: run.history(m, since=self._logged_until) for m in LOGGED_METRICS}
        for row, step in enumerate(steps):
            metrics = {
                f"gradient_doctor/{m}/{layer}": float(values[row, col])
                for m, values in series.items() for col, layer in enumerate(layers)
                if math.isfinite(values[row, col])
            }
            for logger in trainer.loggers:
                if metrics:
                    logger.log_metrics(metrics, step=int(step))
        self._logged_until = int(steps[-1]) + 1
