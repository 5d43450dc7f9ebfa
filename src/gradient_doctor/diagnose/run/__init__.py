"""`diagnose`, findings over a recorded run, and the rules it applies: one module per rule, each a pure function
`History -> list[Finding]` over a window of the record (docs/diagnose.md collects them).

    >>> from gradient_doctor.diagnose.run import diagnose
    >>> diagnose("runs/a").findings
"""

from .window import diagnose

__all__ = ["diagnose"]
