"""`gd.diagnose`: findings over a recorded training run, from the record alone.

    >>> diag = gd.diagnose("runs/a")              # a saved run; or gd.diagnose(run), or run.diagnose()
    >>> diag.healthy, [(f.kind, f.severity, f.layers) for f in diag.findings]
    (False, [('vanishing_gradient', 'critical', ['0', '2', '4'])])
    >>> gd.diagnose(run, window=500)              # only the last 500 steps

Every rule reads the same `History`, built through the public `Run` API, so a live run and `gd.load` of its
log_dir give equal diagnoses.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import InvalidType
from ...record import RunRecord, load
from ...record.history import read_history
from ..causes import by_cause
from ..finding import Diagnosis
from .rules import RUN_RULES


def diagnose(run_or_log_dir: RunRecord | str | Path, window: int | None = None) -> Diagnosis:
    """The findings over the last `window` steps of a run (all of them when None): a `Run` (live or loaded) or the
    log_dir of a saved one."""
    if isinstance(run_or_log_dir, (str, Path)):
        run = load(run_or_log_dir)
    elif isinstance(run_or_log_dir, RunRecord):
        run = run_or_log_dir
    else:
        raise InvalidType(
            "gd.diagnose expects a Run (from gd.watch or gd.load) or the log_dir of a saved run (str or Path), "
            f"got {type(run_or_log_dir).__name__}: {run_or_log_dir!r:.80}"
        )
    history = read_history(run, window)
    return Diagnosis(by_cause([finding for rule in RUN_RULES for finding in rule(history)]),
                     layer_kinds={info.name: info.kind for info in run.layer_details})
