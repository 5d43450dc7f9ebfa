"""Remedies as verified model surgery (`gd.treat`) and training-loop remedies (`gd.clip`).

    >>> t = gd.treat(model, gd.checkup(model, x), inputs=x)
    >>> gd.remedies.he_init(model)                 # or one remedy by hand
    >>> clipper = gd.clip(optimizer, "agc")        # adaptive gradient clipping as an optimizer step pre-hook
"""

from . import remedies
from .remedies.clipping import clip
from .treatment import Treatment, treat

__all__ = ["Treatment", "clip", "remedies", "treat"]
