"""The run record: `Run` (live or loaded), its SQLite store, and `load()`."""

from pathlib import Path

from .run import Run
from .schema import SCHEMA_VERSION
from .store import LayerInfo, ParamInfo, RunStore


def load(log_dir: str | Path) -> Run:
    """Reopen a recorded run read-only (safe in another process, even while it trains).

    >>> run = gd.load("runs/a")
    >>> run.history("grad_norm", layer="0")
    """
    return Run(RunStore.open_readonly(log_dir))


__all__ = ["Run", "RunStore", "LayerInfo", "ParamInfo", "SCHEMA_VERSION", "load"]
