"""Diagnosis: findings, the rules that produce them, and `checkup`, the one-batch preflight.

    >>> from gradient_doctor.diagnose import checkup
    >>> diag = checkup(model, x)
    >>> diag.healthy, [(f.kind, f.severity, f.scope) for f in diag.findings]
"""

from .checkup import checkup
from .errors import CheckupError
from .finding import Diagnosis, Finding
from .remedies import CATALOG as REMEDIES

__all__ = ["checkup", "CheckupError", "Diagnosis", "Finding", "REMEDIES"]
