"""`GradientDoctorCallback` for Keras 3 on PyTorch (`KERAS_BACKEND=torch`): `gd.watch` attached to `model.fit`.

    >>> from gradient_doctor.integrations.keras import GradientDoctorCallback   # sets KERAS_BACKEND=torch if unset
    >>> import keras
    >>> model.fit(x, y, epochs=5, callbacks=[GradientDoctorCallback(log_dir="runs/a")])
    >>> gd.load("runs/a").diagnose()        # layers by their Keras names, in forward order

Under the torch backend a Keras model is a `torch.nn.Module` whose variables are torch Parameters, trained by
torch autograd inside `fit`; the layers are Keras's (probe/keras_layers.py). Each `optimizer.apply` of `fit` is an
optimizer step of the run (`_keras_step.py`): gradient norms every step, taken before Keras applies (and clips)
them; details, update norms and activation statistics at their cadences. A step's `loss` is the loss
`model.compute_loss` returned for that batch (as `logs["loss"]` when a custom `train_step` does not call it); the
Keras metrics of the batch's logs are recorded too, as Keras reports them (running means over the epoch). A step a
LossScaleOptimizer skips (inf/NaN gradients) is counted as `skipped`. Importing this module before keras selects
the torch backend when `KERAS_BACKEND` is unset; another backend is an ImportError naming `KERAS_BACKEND=torch`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import TrainingStopped
from ..probe.metrics import LAYER_METRICS
from ..record.run import RESERVED, RunRecord
from ..treat.guard import Guard
from ._keras_step import KerasStep
from ._session import OnFinding, Session

if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if os.environ["KERAS_BACKEND"] != "torch":
        raise ImportError(
            f"gradient_doctor.integrations.keras needs Keras on PyTorch; KERAS_BACKEND is "
            f"{os.environ['KERAS_BACKEND']!r}: set KERAS_BACKEND=torch before keras is imported"
        )
try:
    import keras
except ImportError as err:
    raise ImportError("gradient_doctor.integrations.keras needs Keras 3: pip install 'gradient-doctor[keras]'") from err
if keras.backend.backend() != "torch":
    raise ImportError(
        f"gradient_doctor.integrations.keras needs Keras on PyTorch; keras was imported with the "
        f"{keras.backend.backend()!r} backend: set KERAS_BACKEND=torch before keras is imported"
    )

#: Log entries recorded as "keras_<name>": the names of the record's own series.
_RENAMED = frozenset(LAYER_METRICS) | frozenset(RESERVED)


class GradientDoctorCallback(keras.callbacks.Callback):
    """Watches the model during `fit`; diagnoses at `diagnose_on` ("epoch_end", "fit_end").

    `on_finding`: "warn" (a RuntimeWarning per new warning/critical finding), "raise" (`gd.TrainingStopped` out of
    `fit` at the first), or a callable taking each `Finding`. `stop_on`: finding kinds that end `fit` the Keras way
    (`model.stop_training = True` at that epoch's end; `callback.stopped` holds the `gd.TrainingStopped`).
    `guard=True` (or a `gd.Guard`) turns on the in-loop guard (docs/autotrain.md). Other keywords go to `gd.watch`
    (`every`, `detail_every`, `update_every`, `activation_every`, ...). The run is `callback.run`.
    """

    def __init__(
        self,
        log_dir: str | Path | None = None,
        *,
        diagnose_on: Iterable[str] = ("epoch_end", "fit_end"),
        on_finding: OnFinding = "warn",
        stop_on: Iterable[str] = (),
        guard: bool | Guard = False,
        **watch_options: Any,
    ):
        super().__init__()
        self.stop_on = frozenset((stop_on,) if isinstance(stop_on, str) else stop_on)
        self.session = Session(log_dir, diagnose_on, on_finding, {"guard": guard, **watch_options}, self.stop_on)
        self.stopped: TrainingStopped | None = None
        self._step: KerasStep | None = None

    @property
    def run(self) -> RunRecord | None:
        return self.session.run

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.stopped = None
        self._step = KerasStep(self.model)
        self.session.start(self.model, self._step)
        self._step.on_release = self.session.close

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._step.loss = None
        self.session.step_due()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        reported = logs.pop("loss", None)
        loss = self._step.loss if self._step.loss is not None else reported
        metrics = {f"keras_{k}" if k in _RENAMED else k: v for k, v in logs.items() if isinstance(v, (int, float))}
        self.session.batch_end(loss, **metrics)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._diagnose("epoch_end")

    def on_train_end(self, logs: dict | None = None) -> None:
        self._step.release()  # closes the run
        self._diagnose("fit_end")

    def _diagnose(self, when: str) -> None:
        try:
            self.session.diagnose(when)
        except TrainingStopped as stop:
            if stop.finding.kind not in self.stop_on:
                raise
            self.stopped = stop
            self.model.stop_training = True

