"""gradient-doctor: find, explain and treat vanishing and exploding gradients in PyTorch models.

    >>> import gradient_doctor as gd
    >>> with gd.watch(model, optimizer=opt, log_dir="runs/a") as run:
    ...     train(model, opt)
    >>> print(run.summary())
    >>> print(gd.checkup(model, x))  # before training: where the gradient vanishes or explodes, and why
    >>> print(run.diagnose())        # after (or during) training: what went wrong in the run, where, and what to do
    >>> t = gd.treat(model, gd.checkup(model, x), inputs=x)   # remedies, each verified on the batch
"""

from ._version import __version__
from .autotrain import AutoTrainResult, autotrain
from .diagnose import Diagnosis, Finding, checkup, diagnose
from .errors import (
    CheckupError, DistributedProbeError, GradientDoctorError, InvalidType, InvalidValue, NotApplicable, RecordError,
    RunClosedError, TrainingStopped, UnknownName, UnsafeRemedy,
)
from .probe.batch.normalizers import register_normalization
from .report import report, to_tensorboard
from .treat import Treatment, clip, remedies, treat
from .treat.guard import Guard
from .watch import Run, load, watch


def __getattr__(name: str):
    """`gd.lab` is imported on first use: the lab (datasets, experiments) is not part of the library's import."""
    if name == "lab":
        import importlib

        return importlib.import_module(".lab", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__",
    "GradientDoctorError",
    "InvalidValue",
    "InvalidType",
    "UnknownName",
    "DistributedProbeError",
    "RecordError",
    "RunClosedError",
    "CheckupError",
    "TrainingStopped",
    "Run",
    "load",
    "watch",
    "autotrain",
    "AutoTrainResult",
    "checkup",
    "register_normalization",
    "diagnose",
    "Diagnosis",
    "Finding",
    "report",
    "to_tensorboard",
    "treat",
    "Treatment",
    "remedies",
    "clip",
    "Guard",
    "NotApplicable",
    "UnsafeRemedy",
]
