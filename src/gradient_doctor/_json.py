"""Plain JSON values from measurements and findings: what `to_dict()` and the saved results hold.

    >>> json_safe({"ratio": np.float32(1e-7), "layers": ("0", "2"), "gain": float("nan")})
    {'ratio': 1.0000000116860974e-07, 'layers': ['0', '2'], 'gain': None}
"""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """`value` with dataclasses, numpy values and tuples turned into JSON types; NaN/inf become None."""
    if is_dataclass(value) and not isinstance(value, type):
        return json_safe(asdict(value))
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
