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
from .diagnosis import CheckupError, Diagnosis, Finding, TrainingStopped, checkup, diagnose
from .errors import GradientDoctorError, RecordError, RunClosedError
from .record import Run, load
from . import lab, remedies
from .report import report, to_tensorboard
from .treat import NotApplicable, Treatment, UnsafeRemedy, clip, treat
from .watch import watch

__all__ = [
    "__version__",
    "GradientDoctorError",
    "RecordError",
    "RunClosedError",
    "CheckupError",
    "TrainingStopped",
    "Run",
    "load",
    "watch",
    "checkup",
    "diagnose",
    "Diagnosis",
    "Finding",
    "report",
    "to_tensorboard",
    "treat",
    "Treatment",
    "remedies",
    "lab",
    "clip",
    "NotApplicable",
    "UnsafeRemedy",
]
