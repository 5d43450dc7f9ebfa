"""Diagnosis: findings, the rules that produce them, `checkup` (the one-batch preflight) and `diagnose` (a run).

    >>> from gradient_doctor.diagnose import checkup, diagnose
    >>> diag = checkup(model, x)
    >>> diag.healthy, [(f.kind, f.severity, f.scope) for f in diag.findings]
    >>> diagnose("runs/a").findings
"""

from ..catalog import CATALOG as REMEDIES
from .checkup import checkup
from .finding import Diagnosis, Finding
from .run import diagnose

__all__ = ["checkup", "Diagnosis", "Finding", "REMEDIES", "diagnose"]
