"""`GradientDoctorCallback` for the Hugging Face `Trainer`: `gd.watch` attached to `trainer.train()`.

    >>> from gradient_doctor.integrations.transformers import GradientDoctorCallback
    >>> trainer = Trainer(model, args, train_dataset=data, callbacks=[GradientDoctorCallback(log_dir="runs/a")])
    >>> trainer.train()                     # warns on findings at each epoch end and at the end of training

**The recorded gradients are the clipped ones** (`max_grad_norm`, default 1.0): the Trainer clips
before any callback event after backward, so no callback can see them unclipped (the Trainer logs
the pre-clip total norm as `grad_norm` itself; `max_grad_norm=0` records unclipped gradients).

Gradient statistics are taken in the (unwrapped) torch optimizer's step pre-hook, which runs inside
`optimizer.step()`: between the `on_pre_optimizer_step` and `on_optimizer_step` callback events,
after gradient accumulation, after clipping and after an fp16 GradScaler unscales — also when no
clipping unscales first, which `on_pre_optimizer_step` would miss. A step the scaler skips records
no statistics and is counted: the next step records `skipped`.

**Loss**: the Trainer gives callbacks no per-step loss; the record takes the `loss` it logs (`on_log`), the
mean training loss since its previous log, at the logging step (every `logging_steps`): the steps in between
have none (NaN in `history("loss")`), and the loss rules judge the logged points.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidType, InvalidValue
from ._session import OnFinding, Session

try:
    from transformers import TrainerCallback
except ImportError as err:
    raise ImportError(
        "gradient_doctor.integrations.transformers needs transformers: pip install 'gradient-doctor[transformers]'"
    ) from err


class GradientDoctorCallback(TrainerCallback):
    """Watches the Trainer's model during `train()`; diagnoses at `diagnose_on` ("epoch_end", "fit_end").

    `on_finding`: "warn" (a RuntimeWarning per new warning/critical finding), "raise"
    (`gd.TrainingStopped` out of `trainer.train()` at the first), or a callable taking each
    `Finding`. Other keywords go to `gd.watch` (`every`, `detail_every`, `activation_every`, ...).
    The run is `callback.run` (closed after training; readable).
    """

    def __init__(
        self,
        log_dir: str | Path | None = None,
        *,
        diagnose_on: Iterable[str] = ("epoch_end", "fit_end"),
        on_finding: OnFinding = "warn",
        **watch_options: Any,
    ):
        self.session = Session(log_dir, diagnose_on, on_finding, watch_options)

    @property
    def run(self):
        return self.session.run

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if model is None or optimizer is None:
            raise InvalidValue(
                f"GradientDoctorCallback needs the Trainer's model and optimizer at on_train_begin; got "
                f"model={type(model).__name__}, optimizer={type(optimizer).__name__}"
            )
        self.session.start(model, _torch_optimizer(optimizer))

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.session.step_due()

    def on_step_end(self, args, state, control, **kwargs):
        self.session.batch_end()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.session.report_loss(logs["loss"])

    def on_epoch_end(self, args, state, control, **kwargs):
        self.session.diagnose("epoch_end")

    def on_train_end(self, args, state, control, **kwargs):
        self.session.close()
        self.session.diagnose("fit_end")


def _torch_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's `AcceleratedOptimizer` (whose step hooks fire)."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InvalidType(f"GradientDoctorCallback: expected a torch optimizer from the Trainer, got {type(optimizer).__name__}")
    return optimizer
