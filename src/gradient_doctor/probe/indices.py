"""Small constant tensors (indices, sizes) built once per device and reused: no host→device copy per step.

    >>> on_device((0, 2, 5), torch.long, device)       # the same tensor on every call with these values
    >>> on_device((3.0, 4.0), torch.float64, device)

`torch.tensor(list, device="cuda")` copies from the host (it waits for the device), and so does
indexing a CUDA tensor with a Python list. The probe's index lists rarely change between steps
(the same parameters have gradients, the same layers are called), so each distinct list is copied
once. The returned tensors are shared: never modify them in place.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


@lru_cache(maxsize=256)
def on_device(values: tuple, dtype: torch.dtype, device: torch.device) -> Tensor:
    """`torch.tensor(values, dtype, device)`, built on the first call with these arguments only."""
    return torch.tensor(values, dtype=dtype, device=device)
