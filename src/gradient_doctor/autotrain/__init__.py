"""`gd.autotrain`: training that repairs itself (checkup, treat, watch with the guard, diagnose, restart).

    >>> result = gd.autotrain(model, optimizer, loader, loss_fn, steps=1000)
    >>> print(result)
"""

from .loop import autotrain
from .result import AutoTrainResult, Round

__all__ = ["AutoTrainResult", "Round", "autotrain"]
