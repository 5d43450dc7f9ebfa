"""Diagnosis: findings, the rules that produce them, `checkup` (the one-batch preflight) and `diagnose` (a run).

    >>> from gradient_doctor.diagnosis import checkup, diagnose
    >>> diag = checkup(model, x)
    >>> diag.healthy, [(f.kind, f.severity, f.scope) for f in diag.findings]
    >>> diagnose("runs/a").findings
"""

from .checkup import checkup
from .errors import CheckupError, TrainingStopped
from .finding import Diagnosis, Finding
from .remedies import CATALOG as REMEDIES
from .run_diagnosis import diagnose

__all__ = ["checkup", "CheckupError", "Diagnosis", "Finding", "REMEDIES", "TrainingStopped", "diagnose"]
