"""How findings rank remedies: the init for an activation family, the order for vanishing, and `ranked`, which
admits only names from the remedy table (catalog.py).

    >>> init_for("rectifier")
    'he_init'
"""

from __future__ import annotations

from ..catalog import CATALOG
from ..errors import InvalidValue

_INIT_FOR_FAMILY = {"rectifier": "he_init", "saturating": "xavier_init", "unknown": "lsuv_init"}


def init_for(family: str) -> str:
    """The init remedy that matches an activation family: "rectifier", "saturating" or "unknown"."""
    return _INIT_FOR_FAMILY[family]


def for_vanishing(family: str, by_activations: bool) -> list[str]:
    """Vanishing through depth: swap saturating activations when they lose the gradient, else the matching init.

    >>> for_vanishing("saturating", by_activations=True)[0]
    'swap_activation:relu'
    """
    if by_activations and family == "saturating":
        return ranked("swap_activation:relu", "he_init", "insert_norm:batch", "add_residual", "reduce_depth")
    return ranked(init_for(family), "orthogonal_init", "lsuv_init", "insert_norm:batch", "add_residual", "reduce_depth")


def ranked(*names: str) -> list[str]:
    """`names` in order, duplicates dropped; every name must be in the catalog.

    >>> ranked("he_init", "insert_norm:batch", "he_init")
    ['he_init', 'insert_norm:batch']
    """
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        raise InvalidValue(f"remedy names must come from the catalog {sorted(CATALOG)}; got {unknown}")
    return list(dict.fromkeys(names))
