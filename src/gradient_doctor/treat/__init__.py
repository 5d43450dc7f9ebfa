"""Remedies as verified model surgery (`gd.treat`) and training-loop remedies (`gd.clip`).

    >>> t = gd.treat(model, gd.checkup(model, x), inputs=x)
    >>> gd.remedies.he_init(model)                 # or one remedy by hand
    >>> clipper = gd.clip(optimizer, "agc")        # adaptive gradient clipping as an optimizer step pre-hook
"""

from .clipping import clip
from .errors import NotApplicable, UnsafeRemedy
from .treatment import Treatment, treat

__all__ = ["NotApplicable", "Treatment", "UnsafeRemedy", "clip", "treat"]
