"""`checkup`, the one-batch preflight, and the rules it applies: one module per rule, each a pure function
`Measurement -> list[Finding]` with its thresholds and their reasons next to them (docs/checkup.md collects them).

    >>> from gradient_doctor.diagnose.checkup import checkup
    >>> checkup(model, x).findings
"""

from .preflight import checkup

__all__ = ["checkup"]
