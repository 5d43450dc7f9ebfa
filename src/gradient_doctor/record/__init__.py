"""The run record: `RunRecord` (live or loaded), its SQLite store, `History` windows, and `load()`.

    >>> record = load("runs/a")   # gd.load adds diagnose/summary/plot on top (watch.Run)
    >>> record.history("grad_norm").shape
"""

from pathlib import Path

from .run import Intervention, RunRecord
from .schema import SCHEMA_VERSION
from .store import LayerInfo, ParamInfo, RunStore


def load(log_dir: str | Path) -> RunRecord:
    """Reopen a recorded run read-only (safe in another process, even while it trains), as a snapshot: the steps
    recorded when it was loaded (load again to see later ones).

    >>> run = gd.load("runs/a")
    >>> run.history("grad_norm", layer="0")
    """
    return RunRecord(RunStore.open_readonly(log_dir))


__all__ = ["Intervention", "RunRecord", "RunStore", "LayerInfo", "ParamInfo", "SCHEMA_VERSION", "load"]
