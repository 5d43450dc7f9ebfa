"""Presentation: terminal views, the offline HTML report, PNG plots and TensorBoard export. Measurement never
lives here.

    >>> gd.report(run, "report.html")          # a Run, a log_dir, a checkup Diagnosis or a Treatment
    >>> gd.to_tensorboard(run, "tb/a")         # the [tensorboard] extra
    >>> run.plot("grad_flow", "flow.png")      # the [plots] extra
"""

from .html import report
from .tensorboard import to_tensorboard

__all__ = ["report", "to_tensorboard"]
